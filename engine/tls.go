// This file runs TLS on the event loop: the standard library's crypto/tls,
// driven from the bytes the loop hands it through an in-memory net.Conn,
// with each handshake on a short-lived goroutine of its own; the options
// that configure it, and the TLS state a handler can read.
package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simplerpc/simplerpc/handler"
)

// Reasons a TLS connection closed, given to the disconnect callback (once
// the connect callback ran), to [Client.Err] and to the log.
var (
	// ErrTLSHandshake: the TLS handshake failed, did not finish within
	// [WithHandshakeTimeout] (the reason then wraps
	// context.DeadlineExceeded), or did not begin because [WithMaxHandshakes]
	// handshakes were in progress. It wraps crypto/tls's error: match it
	// with errors.As, for example with *tls.CertificateVerificationError,
	// tls.RecordHeaderError (a peer that does not speak TLS) or
	// tls.AlertError.
	ErrTLSHandshake = errors.New("engine: TLS handshake failed")
	// ErrTLS: after the handshake, what the peer sent could not be read as
	// TLS records: a bad MAC, a record truncated by the end of the
	// connection, an alert. It wraps crypto/tls's error, or
	// io.ErrUnexpectedEOF for a truncated record. A peer that ends TLS with
	// close_notify is not an error: the reason wraps io.EOF.
	ErrTLS = errors.New("engine: TLS error")
)

// WithTLS makes every connection of the server or the dialer TLS, with the
// standard library's crypto/tls configured by cfg. cfg is cloned: the
// caller's value is never changed, and changes made to it later have no
// effect. Defaults to nil, plain TCP. A nil cfg is an invalid option.
//
// A server needs a certificate: Certificates, GetCertificate or
// GetConfigForClient (serving several names by SNI is the job of those
// callbacks). Mutual TLS is ClientAuth with ClientCAs; the peer's
// certificates are then in [TLSState]. ALPN (NextProtos), MinVersion and the
// cipher suites come from cfg too, with crypto/tls's defaults for what it
// leaves zero (TLS 1.2 at least).
//
// A client verifies the server against RootCAs (the system's roots if nil)
// and ServerName, which defaults to the host of the address dialled;
// InsecureSkipVerify turns verification off, for tests only. A client on a
// unix:// address must set ServerName.
//
// The callbacks of cfg (GetCertificate, GetConfigForClient,
// VerifyPeerCertificate, VerifyConnection, ...) run on the connection's
// handshake goroutine, not on the event loop: they may block, but must
// return once the context of their ClientHelloInfo or
// CertificateRequestInfo ends (at the handshake's deadline, or when the
// server or dialer stops, which waits for them).
//
// The engine sets two fields of its copy: Renegotiation to
// RenegotiateNever, since a renegotiation would block the loop, and
// DynamicRecordSizingDisabled to true, since the loop writes each round's
// frames in one call, which then becomes records of up to 16 KiB rather
// than a ramp of small ones. A config that GetConfigForClient returns is
// used as it is.
//
// With WithTLS an address may say tls://host:port, the same as host:port;
// tls:// without WithTLS is an error of Start, Serve and Dial.
func WithTLS(cfg *tls.Config) Option {
	return sharedOption(func(c *config) {
		c.useTLS = true
		c.tlsConfig = nil
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
	})
}

// WithHandshakeTimeout bounds each TLS handshake: a connection whose
// handshake is not over d after it opened is closed with a reason wrapping
// [ErrTLSHandshake] and context.DeadlineExceeded. Defaults to 10s; it must
// be positive. It bounds the WebSocket upgrade the same way (with 408 and
// [ErrWebSocketHandshake]); it has no other effect without [WithTLS].
func WithHandshakeTimeout(d time.Duration) Option {
	return sharedOption(func(c *config) { c.handshakeTimeout = d })
}

// WithMaxHandshakes caps the TLS handshakes in progress at once on a server
// or a dialer, each of which runs on a goroutine of its own: a connection
// that opens past the cap is closed at once with a reason wrapping
// [ErrTLSHandshake]. Defaults to 1024; it must be at least 1. It has no
// effect without [WithTLS].
func WithMaxHandshakes(n int) Option {
	return sharedOption(func(c *config) { c.maxHandshakes = n })
}

// TLSState returns the TLS state of c, a server's connection or a
// [*Client] (its current connection): the version, cipher suite, ALPN
// protocol, server name and, with mutual TLS, the peer's certificates. It
// reports false for a connection without TLS, one whose handshake is not
// over, and any other handler.Conn. It is safe for concurrent use.
func TLSState(c handler.Conn) (tls.ConnectionState, bool) {
	var cc *conn
	switch c := c.(type) {
	case *conn:
		// A server's connection reaches the application only once it is
		// ready, after its layer was set.
		cc = c
	case *Client:
		// The current connection may be opening on its loop: only a ready
		// one (read under the client's lock) has its layer set.
		if cur := c.current(); cur != nil && c.isReady(cur) {
			cc = cur
		}
	}
	if cc == nil || cc.tl == nil {
		return tls.ConnectionState{}, false
	}
	tl := cc.tl.l
	if s, ok := tl.(*stack); ok {
		tl = s.lower // wss: TLS under WebSocket
	}
	l, ok := tl.(*tlsLayer)
	if !ok || !l.over.Load() {
		return tls.ConnectionState{}, false
	}
	return l.tc.ConnectionState(), true
}

// setupTLS checks the TLS options and, with [WithTLS], gives every
// connection a TLS layer. Called by validate.
func (c *config) setupTLS(server bool) error {
	switch {
	case c.handshakeTimeout <= 0:
		return invalidOption("WithHandshakeTimeout", "%v (want > 0)", c.handshakeTimeout)
	case c.maxHandshakes < 1:
		return invalidOption("WithMaxHandshakes", "%d (want >= 1)", c.maxHandshakes)
	case !c.useTLS:
		return nil
	case c.tlsConfig == nil:
		return invalidOption("WithTLS", "nil config")
	}
	// A copy of the option's own: one option value may configure several
	// servers or dialers.
	cfg := c.tlsConfig.Clone()
	if server && len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return invalidOption("WithTLS", "a server needs a certificate: Certificates, GetCertificate or GetConfigForClient")
	}
	cfg.Renegotiation = tls.RenegotiateNever
	cfg.DynamicRecordSizingDisabled = true
	ctx, cancel := context.WithCancel(context.Background())
	t := &tlsSide{cfg: cfg, server: server, timeout: c.handshakeTimeout, max: int64(c.maxHandshakes),
		ctx: ctx, cancel: cancel}
	c.tls = t
	c.newLayer = t.newLayer
	return nil
}

// untls returns addr with a tls:// scheme turned into tcp://, and an error
// for tls:// without [WithTLS].
func (c *config) untls(addr string) (string, error) {
	rest, ok := strings.CutPrefix(addr, "tls://")
	if !ok {
		return addr, nil
	}
	if c.tls == nil {
		return "", fmt.Errorf("engine: address %q: tls:// needs the WithTLS option", addr)
	}
	return "tcp://" + rest, nil
}

// stopTLS ends the handshakes in progress and refuses new ones: the first
// step of a shutdown.
func (c *config) stopTLS() {
	if c.tls != nil {
		c.tls.cancel()
	}
}

// waitTLS waits for the handshake goroutines to end, once the event loops
// have stopped (they start them).
func (c *config) waitTLS() {
	if c.tls != nil {
		c.tls.wg.Wait()
	}
}

// tlsSide is the TLS of a server or a dialer: its configuration and its
// handshakes in progress.
type tlsSide struct {
	cfg     *tls.Config // the clone, shared by the connections (a server's session tickets live in it)
	server  bool
	timeout time.Duration
	max     int64

	ctx    context.Context // ends when the server or dialer stops
	cancel context.CancelFunc
	active atomic.Int64   // handshakes in progress
	wg     sync.WaitGroup // handshake goroutines; Add on the loops only
}

func (t *tlsSide) newLayer(c *conn) layer { return &tlsLayer{t: t, c: c} }

// clientConfig returns the config of a client connection: with the host
// dialled as ServerName, unless the config names one.
func (t *tlsSide) clientConfig(c *conn) *tls.Config {
	cl, ok := c.owner.(*Client)
	if t.cfg.ServerName != "" || !ok || cl.network == "unix" {
		return t.cfg
	}
	host, _, err := net.SplitHostPort(cl.addr)
	if err != nil || host == "" {
		return t.cfg
	}
	cfg := t.cfg.Clone()
	cfg.ServerName = host
	return cfg
}

// tlsLayer is the TLS of one connection: a tls.Conn over a memConn.
//
// The handshake runs on a goroutine of its own, because crypto/tls keeps
// the first error of a handshake, a "no data yet" included, and so cannot
// resume one: the goroutine's reads wait for the bytes the loop hands over
// in input. Its writes are not written by the goroutine: gnet's Write is
// loop-only, and AsyncWrite, though safe, costs allocations and is not
// ordered with the loop's own writes (docs/DESIGN.md, Writing). They
// collect in the memConn and the goroutine wakes the loop, whose next
// input writes them; so every byte of a connection is written by its
// loop, and the last flight of the handshake always goes out before the
// first frame.
//
// Once the handshake is over everything runs on the loop: input lends the
// wire bytes to the memConn and calls tls.Conn.Read until they are used
// up, and output encrypts with tls.Conn.Write into the buffer the loop
// then writes to the socket.
type tlsLayer struct {
	t  *tlsSide
	c  *conn
	tc *tls.Conn
	mc *memConn

	out func([]byte) error // writes wire bytes to the socket; loop-only

	// Loop-only.
	done       bool // the loop has seen the handshake succeed
	failed     bool // input returned an error: crypto/tls sent its alert, no close_notify
	peerClosed bool // the peer sent close_notify

	over atomic.Bool // done, for TLSState off the loop
}

// maxPending bounds the wire bytes handed to a handshake and not read by it
// yet; the rest waits in gnet's buffer until the handshake has read them.
const maxPending = 64 << 10

// errCloseNotify is the reason of a connection whose peer ended TLS with
// close_notify: an orderly end, like a TCP peer's io.EOF.
var errCloseNotify = fmt.Errorf("engine: the peer closed TLS (close_notify): %w", io.EOF)

func (l *tlsLayer) start(out func([]byte) error, wake func()) error {
	t := l.t
	l.out = out
	if t.ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrTLSHandshake, ErrShutdown)
	}
	if t.active.Add(1) > t.max {
		t.active.Add(-1)
		return l.fail(fmt.Errorf("%w: %d handshakes in progress, the limit of WithMaxHandshakes", ErrTLSHandshake, t.max))
	}
	l.mc = &memConn{wake: wake, notify: make(chan struct{}, 1), local: l.c.gc.LocalAddr(), remote: l.c.remote,
		blocking: true}
	if t.server {
		l.tc = tls.Server(l.mc, t.cfg)
	} else {
		l.tc = tls.Client(l.mc, t.clientConfig(l.c))
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	t.wg.Add(1)
	go l.handshake(ctx, cancel)
	return nil
}

// handshake runs the handshake, on its own goroutine, and hands the result
// to the loop.
func (l *tlsLayer) handshake(ctx context.Context, cancel context.CancelFunc) {
	defer l.t.wg.Done()
	// The deadline reaches the config's callbacks through ctx, and a
	// blocked read through crypto/tls, which closes the memConn when ctx
	// ends.
	err := l.tc.HandshakeContext(ctx)
	cancel()
	l.t.active.Add(-1)
	l.mc.finish(err)
}

func (l *tlsLayer) input(plain, in []byte) ([]byte, int, bool, error) {
	n := 0
	if !l.done {
		m := l.mc
		m.mu.Lock()
		m.woken = false
		if !m.hsDone {
			if m.poff > 0 {
				k := copy(m.pend, m.pend[m.poff:])
				m.pend, m.poff = m.pend[:k], 0
			}
			n = min(len(in), max(maxPending-len(m.pend), 0))
			m.pend = append(m.pend, in[:n]...)
			m.throttled = n < len(in)
		}
		over, hsErr := m.hsDone, m.hsErr
		out := m.out
		m.out = nil // the goroutine may append meanwhile: never reused
		m.mu.Unlock()
		if n > 0 {
			m.signal()
		}
		if len(out) > 0 {
			if err := l.out(out); err != nil {
				return plain, n, false, err // gnet has closed the connection
			}
		}
		switch {
		case !over:
			return plain, n, false, nil
		case hsErr != nil:
			l.failed = true
			return plain, n, false, l.fail(l.handshakeError(hsErr))
		case l.t.ctx.Err() != nil:
			// Over as the server stops: it must not join the connections
			// the shutdown has already closed.
			return plain, n, false, fmt.Errorf("%w: %w", ErrTLSHandshake, ErrShutdown)
		}
		l.done = true
		l.over.Store(true)
	}
	plain, k, err := l.read(plain, in[n:])
	return plain, n + k, true, err
}

// handshakeError is the reason of a failed handshake.
func (l *tlsLayer) handshakeError(err error) error {
	switch {
	case l.t.ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrTLSHandshake, ErrShutdown)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: not over within %v: %w", ErrTLSHandshake, l.t.timeout, err)
	}
	return fmt.Errorf("%w: %w", ErrTLSHandshake, err)
}

// fail logs why a handshake failed, where no callback will say it: the
// connection never became ready.
func (l *tlsLayer) fail(err error) error {
	l.c.side.cfg.logger.Info("simplerpc: TLS handshake failed", "conn", l.c.id, "remote", l.c.RemoteAddr(), "err", err)
	return err
}

// Room kept free in plain for each tls.Conn.Read, and how much it grows by.
const (
	minRoom  = 4 << 10
	growRoom = 16 << 10
)

// read decrypts what crypto/tls holds and the wire bytes in, once the
// handshake is over, appending the plaintext to plain. It returns how many
// bytes of in it consumed: all of them, crypto/tls keeps a partial record.
func (l *tlsLayer) read(plain, in []byte) ([]byte, int, error) {
	m := l.mc
	m.mu.Lock()
	m.in = in
	m.mu.Unlock()
	var rerr error
	for !l.peerClosed {
		if cap(plain)-len(plain) < minRoom {
			plain = slices.Grow(plain, max(len(in), growRoom))
		}
		room := cap(plain) - len(plain)
		k, err := l.tc.Read(plain[len(plain):cap(plain)])
		plain = plain[:len(plain)+k]
		if err != nil {
			if !errors.Is(err, errNoData) {
				rerr = err
			}
			break
		}
		if k < room && m.buffered() == 0 {
			break // a whole record read, and no other given (see span)
		}
	}
	m.mu.Lock()
	left := len(m.in)
	m.in = nil
	out := m.out // an alert, a key update
	m.out = nil
	m.mu.Unlock()
	if len(out) > 0 {
		if err := l.out(out); err != nil {
			return plain, len(in) - left, err
		}
	}
	switch {
	case rerr == nil:
	case errors.Is(rerr, io.EOF) && !l.peerClosed:
		// close_notify: the frames before it are read, their answers go
		// out, then the connection closes. The close is queued by a task,
		// so that it comes after the answers this round queues.
		l.peerClosed = true
		c := l.c
		_ = c.loop.enqueue(task{kind: taskFunc, fn: func() { c.closeWith(errCloseNotify) }}, nil)
	default:
		l.failed = true
		return plain, len(in) - left, fmt.Errorf("%w: %w", ErrTLS, rerr)
	}
	return plain, len(in) - left, nil
}

func (l *tlsLayer) output(dst, p []byte) ([]byte, error) {
	if !l.done {
		return dst, fmt.Errorf("%w: write before the handshake is over", ErrTLS)
	}
	m := l.mc
	m.mu.Lock()
	m.out = append(dst, m.out...)
	m.mu.Unlock()
	_, err := l.tc.Write(p)
	m.mu.Lock()
	dst = m.out
	m.out = nil
	m.mu.Unlock()
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return dst, nil
}

func (l *tlsLayer) stop(err error) error {
	m := l.mc
	if m == nil {
		return err // start refused the connection
	}
	if !l.done {
		m.close() // ends the handshake's reads
		if errors.Is(err, io.EOF) {
			// Not io.EOF itself, which says a peer closed in order.
			return fmt.Errorf("%w: the peer closed the connection: %w", ErrTLSHandshake, io.ErrUnexpectedEOF)
		}
		return err
	}
	switch {
	case l.failed:
	case err == nil:
		// The engine closes a sound connection: say so, as TLS asks. gnet
		// writes it before it closes the socket.
		_ = l.tc.CloseWrite()
		m.mu.Lock()
		out := m.out
		m.out = nil
		m.mu.Unlock()
		if len(out) > 0 {
			_ = l.out(out)
		}
	case l.peerClosed && errors.Is(err, io.EOF):
		err = errCloseNotify
	case errors.Is(err, io.EOF) && l.truncated():
		err = fmt.Errorf("%w: the connection ended inside a record: %w", ErrTLS, io.ErrUnexpectedEOF)
	}
	m.close()
	return err
}

// pending reports a TLS record begun and not all given to crypto/tls.
func (l *tlsLayer) pending() bool {
	m := l.mc
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hn > 0
}

// truncated reports whether crypto/tls holds part of a record, once the
// peer has closed the connection.
func (l *tlsLayer) truncated() bool {
	m := l.mc
	m.mu.Lock()
	m.eof = true
	m.mu.Unlock()
	var b [1]byte
	_, err := l.tc.Read(b[:])
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// recordHeaderLen is the length of a TLS record's header: type, version,
// length (RFC 8446 §5.1).
const recordHeaderLen = 5

// errNoData is what a memConn's read returns after the handshake when the
// loop has handed it nothing more. crypto/tls passes a temporary net.Error
// up without keeping it (readRecordOrCCS), so tls.Conn.Read can be called
// again once more bytes arrive.
var errNoData net.Error = noData{}

type noData struct{}

func (noData) Error() string   { return "engine: no TLS input yet" }
func (noData) Timeout() bool   { return true }
func (noData) Temporary() bool { return true }

// memConn is the net.Conn under a connection's tls.Conn: its reads take the
// wire bytes the loop handed over, its writes collect wire bytes for the
// loop to write to the socket. During the handshake a read waits until the
// loop hands bytes over; after it, a read with nothing to give returns
// errNoData. It is safe for concurrent use: the handshake goroutine and the
// loop share it.
//
// The handshake's writes wake the loop only when the handshake waits for
// the peer or returns, not as they are written: a failing handshake writes
// its alert and then returns, and the loop must see the alert and the
// error together, or the peer, closing on the alert, may be heard first and
// the reason lost.
type memConn struct {
	wake          func()        // makes the loop call input; from any goroutine
	notify        chan struct{} // a token when pend grew or the conn closed
	local, remote net.Addr

	mu        sync.Mutex // guards the fields below
	pend      []byte     // handed over during the handshake, owned; read from poff
	poff      int
	hdr       [recordHeaderLen]byte // the header of the record being given to crypto/tls
	hn        int                   // bytes of hdr seen
	body      int                   // bytes of the record's body not given yet
	in        []byte                // lent by input after the handshake
	out       []byte                // written by crypto/tls, for the loop to write
	blocking  bool                  // the handshake runs: reads wait for bytes
	closed    bool
	eof       bool // the peer has closed: reads return io.EOF
	woken     bool // a wake is pending: input has not run since
	throttled bool // input held bytes back: wake the loop once pend is read
	hsDone    bool // the handshake returned, with hsErr
	hsErr     error
}

func (m *memConn) Read(p []byte) (int, error) {
	m.mu.Lock()
	for {
		if m.poff < len(m.pend) {
			b := m.pend[m.poff:]
			n := copy(p, b[:m.span(b)])
			m.advance(b[:n])
			m.poff += n
			wake := false
			if m.poff == len(m.pend) {
				m.pend, m.poff = m.pend[:0], 0
				if m.throttled {
					m.throttled = false
					wake = m.wakeLocked()
				}
			}
			m.mu.Unlock()
			if wake {
				m.wake()
			}
			return n, nil
		}
		if len(m.in) > 0 {
			n := copy(p, m.in[:m.span(m.in)])
			m.advance(m.in[:n])
			m.in = m.in[n:]
			m.mu.Unlock()
			return n, nil
		}
		switch {
		case m.closed:
			m.mu.Unlock()
			return 0, net.ErrClosed
		case m.eof:
			m.mu.Unlock()
			return 0, io.EOF
		case !m.blocking:
			m.mu.Unlock()
			return 0, errNoData
		}
		// The handshake waits for the peer: what it wrote must go out now.
		wake := len(m.out) > 0 && m.wakeLocked()
		m.mu.Unlock()
		if wake {
			m.wake()
		}
		<-m.notify
		m.mu.Lock()
	}
}

func (m *memConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, net.ErrClosed
	}
	m.out = append(m.out, p...)
	m.mu.Unlock()
	return len(p), nil
}

// span returns how many bytes of b a read may give: up to the end of the
// record they are part of. crypto/tls then holds at most one record it
// has not decrypted, so once a tls.Conn.Read that did not fill its buffer
// has used up the bytes lent, nothing is left to decrypt: input need not
// make the extra call that would find no data, which costs crypto/tls an
// allocation.
func (m *memConn) span(b []byte) int {
	if m.hn == recordHeaderLen {
		return min(len(b), m.body)
	}
	need := recordHeaderLen - m.hn
	if len(b) < need {
		return len(b)
	}
	var h [recordHeaderLen]byte
	copy(h[copy(h[:], m.hdr[:m.hn]):], b[:need])
	return min(len(b), need+(int(h[3])<<8|int(h[4])))
}

// advance moves the record parser over b, bytes given to crypto/tls.
func (m *memConn) advance(b []byte) {
	for len(b) > 0 {
		if m.hn < recordHeaderLen {
			k := copy(m.hdr[m.hn:], b)
			m.hn += k
			b = b[k:]
			if m.hn == recordHeaderLen {
				m.body = int(m.hdr[3])<<8 | int(m.hdr[4])
			}
		} else {
			k := min(m.body, len(b))
			m.body -= k
			b = b[k:]
		}
		if m.hn == recordHeaderLen && m.body == 0 {
			m.hn = 0
		}
	}
}

// buffered returns the bytes handed over or lent and not read yet.
func (m *memConn) buffered() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pend) - m.poff + len(m.in)
}

// wakeLocked reports whether the caller must wake the loop: once until input
// runs. m.mu is held.
func (m *memConn) wakeLocked() bool {
	if m.woken {
		return false
	}
	m.woken = true
	return true
}

// finish hands the handshake's result to the loop.
func (m *memConn) finish(err error) {
	m.mu.Lock()
	m.hsDone, m.hsErr, m.blocking = true, err, false
	m.woken = true
	m.mu.Unlock()
	m.wake()
}

// Close ends the reads; crypto/tls calls it when the handshake's context
// ends.
func (m *memConn) Close() error {
	m.close()
	return nil
}

func (m *memConn) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.signal()
}

func (m *memConn) signal() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *memConn) LocalAddr() net.Addr              { return m.local }
func (m *memConn) RemoteAddr() net.Addr             { return m.remote }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }
