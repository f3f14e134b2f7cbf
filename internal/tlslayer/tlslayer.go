// Package tlslayer runs TLS over bytes, without sockets: the standard
// library's crypto/tls over an in-memory net.Conn, each handshake on a
// short-lived goroutine of its own, then records decrypted from the bytes
// that arrived and encrypted into bytes to send. What it writes by itself
// (the handshake's flights, alerts, close_notify) goes out through the
// environment it is handed, never to a socket.
//
// A Layer is not safe for concurrent use: one goroutine (an event loop)
// calls its methods, except ConnectionState, which is safe from any
// goroutine; the environment's Wake is called from the handshake's
// goroutine. A Side is safe for concurrent use.
package tlslayer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a Layer fails with.
var (
	// ErrHandshake: the handshake failed, did not finish in time, or did
	// not begin because too many were in progress.
	ErrHandshake = errors.New("engine: TLS handshake failed")
	// ErrTLS: after the handshake, what the peer sent could not be read as
	// TLS records.
	ErrTLS = errors.New("engine: TLS error")
)

// ErrCloseNotify is the reason of a connection whose peer ended TLS with
// close_notify: an orderly end, like a TCP peer's io.EOF.
var ErrCloseNotify = fmt.Errorf("engine: the peer closed TLS (close_notify): %w", io.EOF)

// Side is the TLS of a server or a dialer: its configuration and its
// handshakes in progress.
type Side struct {
	cfg     *tls.Config // shared by the connections (a server's session tickets live in it)
	server  bool
	timeout time.Duration
	max     int64
	perAddr int   // a server's handshakes in progress per remote address; 0: no cap
	stopped error // the reason a handshake ends with once the side stops

	addrMu sync.Mutex         // guards byAddr
	byAddr map[netip.Addr]int // a server's handshakes in progress, by remote address

	ctx    context.Context // ends when the side stops
	cancel context.CancelFunc
	active atomic.Int64   // handshakes in progress
	wg     sync.WaitGroup // handshake goroutines
}

// NewSide returns the TLS of a server (server true) or a dialer, with cfg
// (used as it is: the caller clones it), each handshake bounded by timeout
// and at most max at once; a server's, at most perAddr from one remote IP
// address (0: no such cap), so that one address cannot take them all. A
// handshake ended by Stop fails with a reason wrapping ErrHandshake and
// stopped.
func NewSide(cfg *tls.Config, server bool, timeout time.Duration, max, perAddr int, stopped error) *Side {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Side{cfg: cfg, server: server, timeout: timeout, max: int64(max), stopped: stopped, ctx: ctx, cancel: cancel}
	if server && perAddr > 0 {
		s.perAddr, s.byAddr = perAddr, make(map[netip.Addr]int)
	}
	return s
}

// claim takes one of addr's handshakes, or reports false when addr has
// perAddr in progress. An address that is not IP (a Unix socket's) is not
// capped.
func (t *Side) claim(addr net.Addr) (netip.Addr, bool) {
	ip, ok := ipOf(addr)
	if t.byAddr == nil || !ok {
		return netip.Addr{}, true
	}
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	if t.byAddr[ip] >= t.perAddr {
		return netip.Addr{}, false
	}
	t.byAddr[ip]++
	return ip, true
}

// release gives back a handshake claim took.
func (t *Side) release(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	t.addrMu.Lock()
	defer t.addrMu.Unlock()
	if t.byAddr[ip]--; t.byAddr[ip] <= 0 {
		delete(t.byAddr, ip)
	}
}

func ipOf(addr net.Addr) (netip.Addr, bool) {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	return ip.Unmap(), ok
}

// Config returns the side's config, shared: it must not be changed.
func (t *Side) Config() *tls.Config { return t.cfg }

// Stop ends the handshakes in progress and refuses new ones.
func (t *Side) Stop() { t.cancel() }

// Wait waits for the handshake goroutines to end.
func (t *Side) Wait() { t.wg.Wait() }

// Env is what a Layer may do to the connection it runs on.
type Env struct {
	// Out writes wire bytes: the handshake's flights, alerts,
	// close_notify. Its error ends the input that called it.
	Out func([]byte) error
	// Wake makes the loop call Input again soon; from any goroutine.
	Wake func()
	// Close closes the connection with reason once the plaintext handed
	// over so far is handled: the peer's close_notify.
	Close func(reason error)
	// Local and Remote are the connection's addresses.
	Local, Remote net.Addr
	// Config, if not nil, replaces the side's for this connection (a
	// client's ServerName).
	Config *tls.Config
}

// Layer is the TLS of one connection: a tls.Conn over a memConn.
//
// The handshake runs on a goroutine of its own, because crypto/tls keeps
// the first error of a handshake, a "no data yet" included, and so cannot
// resume one: the goroutine's reads wait for the bytes the loop hands over
// in Input. Its writes are not written by the goroutine: they collect in
// the memConn and the goroutine wakes the loop, whose next Input writes
// them; so every byte of a connection is written by its loop, and the last
// flight of the handshake always goes out before the first frame.
//
// Once the handshake is over everything runs on the loop: Input lends the
// wire bytes to the memConn and calls tls.Conn.Read until they are used
// up, and Output encrypts with tls.Conn.Write into the caller's buffer.
type Layer struct {
	t   *Side
	env Env
	tc  *tls.Conn
	mc  *memConn
	ip  netip.Addr // the address whose handshake count it holds, if any

	// Loop-only.
	done       bool // the loop has seen the handshake succeed
	failed     bool // Input returned an error: crypto/tls sent its alert, no close_notify
	peerClosed bool // the peer sent close_notify

	over atomic.Bool // done, for ConnectionState off the loop
}

// New returns the layer of one connection.
func (t *Side) New(env Env) *Layer { return &Layer{t: t, env: env} }

// maxPending bounds the wire bytes handed to a handshake and not read by it
// yet; the rest is left to the caller until the handshake has read them.
const maxPending = 64 << 10

// Start begins the handshake.
func (l *Layer) Start() error {
	t := l.t
	if t.ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, t.stopped)
	}
	if t.active.Add(1) > t.max {
		t.active.Add(-1)
		return fmt.Errorf("%w: %d handshakes in progress, the limit of WithMaxHandshakes", ErrHandshake, t.max)
	}
	ip, ok := t.claim(l.env.Remote)
	if !ok {
		t.active.Add(-1)
		return fmt.Errorf("%w: %d handshakes in progress from %v, the limit per address", ErrHandshake, t.perAddr, l.env.Remote)
	}
	l.ip = ip
	l.mc = &memConn{wake: l.env.Wake, notify: make(chan struct{}, 1), local: l.env.Local, remote: l.env.Remote,
		blocking: true}
	cfg := l.env.Config
	if cfg == nil {
		cfg = t.cfg
	}
	if t.server {
		l.tc = tls.Server(l.mc, cfg)
	} else {
		l.tc = tls.Client(l.mc, cfg)
	}
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	t.wg.Add(1)
	go l.handshake(ctx, cancel)
	return nil
}

// handshake runs the handshake, on its own goroutine, and hands the result
// to the loop.
func (l *Layer) handshake(ctx context.Context, cancel context.CancelFunc) {
	defer l.t.wg.Done()
	// The deadline reaches the config's callbacks through ctx, and a
	// blocked read through crypto/tls, which closes the memConn when ctx
	// ends.
	err := l.tc.HandshakeContext(ctx)
	cancel()
	l.t.release(l.ip)
	l.t.active.Add(-1)
	l.mc.finish(err)
}

// Input consumes wire bytes from in (borrowed until it returns) and
// appends the plaintext they carry to plain. It returns the grown plain,
// how many bytes of in it consumed, and whether the handshake is over.
// Until it is, it is also called with no bytes after each wake. An error
// wraps ErrHandshake or ErrTLS, or is Env.Out's.
func (l *Layer) Input(plain, in []byte) ([]byte, int, bool, error) {
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
			if err := l.env.Out(out); err != nil {
				return plain, n, false, err
			}
		}
		switch {
		case !over:
			return plain, n, false, nil
		case hsErr != nil:
			l.failed = true
			return plain, n, false, l.handshakeError(hsErr)
		case l.t.ctx.Err() != nil:
			// Over as the side stops: it must not join the connections
			// already closed.
			return plain, n, false, fmt.Errorf("%w: %w", ErrHandshake, l.t.stopped)
		}
		l.done = true
		l.over.Store(true)
	}
	plain, k, err := l.read(plain, in[n:])
	return plain, n + k, true, err
}

// handshakeError is the reason of a failed handshake.
func (l *Layer) handshakeError(err error) error {
	switch {
	case l.t.ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrHandshake, l.t.stopped)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: not over within %v: %w", ErrHandshake, l.t.timeout, err)
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}

// Room kept free in plain for each tls.Conn.Read, and how much it grows by.
const (
	minRoom  = 4 << 10
	growRoom = 16 << 10
)

// read decrypts what crypto/tls holds and the wire bytes in, once the
// handshake is over, appending the plaintext to plain. It returns how many
// bytes of in it consumed: all of them, crypto/tls keeps a partial record.
func (l *Layer) read(plain, in []byte) ([]byte, int, error) {
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
		if err := l.env.Out(out); err != nil {
			return plain, len(in) - left, err
		}
	}
	switch {
	case rerr == nil:
	case errors.Is(rerr, io.EOF) && !l.peerClosed:
		// close_notify: the frames before it are read, their answers go
		// out, then the connection closes.
		l.peerClosed = true
		l.env.Close(ErrCloseNotify)
	default:
		l.failed = true
		return plain, len(in) - left, fmt.Errorf("%w: %w", ErrTLS, rerr)
	}
	return plain, len(in) - left, nil
}

// Output appends the records that carry p to dst.
func (l *Layer) Output(dst, p []byte) ([]byte, error) {
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

// Pending reports a TLS record begun and not all given to crypto/tls.
func (l *Layer) Pending() bool {
	m := l.mc
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hn > 0
}

// ConnectionState returns the connection's TLS state once the handshake
// is over. It is safe for concurrent use.
func (l *Layer) ConnectionState() (tls.ConnectionState, bool) {
	if !l.over.Load() {
		return tls.ConnectionState{}, false
	}
	return l.tc.ConnectionState(), true
}

// Stop ends the layer, once, with the error the connection closes with
// (nil for a close the engine asked for, io.EOF when the peer closed): it
// ends a handshake in progress, writes close_notify on a sound connection
// the engine closes, and returns the error to close with: a truncated
// record or close_notify rather than a plain io.EOF.
func (l *Layer) Stop(err error) error {
	m := l.mc
	if m == nil {
		return err // Start refused the connection
	}
	if !l.done {
		m.close() // ends the handshake's reads
		if errors.Is(err, io.EOF) {
			// Not io.EOF itself, which says a peer closed in order.
			return fmt.Errorf("%w: the peer closed the connection: %w", ErrHandshake, io.ErrUnexpectedEOF)
		}
		return err
	}
	switch {
	case l.failed:
	case err == nil:
		_ = l.tc.CloseWrite()
		m.mu.Lock()
		out := m.out
		m.out = nil
		m.mu.Unlock()
		if len(out) > 0 {
			_ = l.env.Out(out)
		}
	case l.peerClosed && errors.Is(err, io.EOF):
		err = ErrCloseNotify
	case errors.Is(err, io.EOF) && l.truncated():
		err = fmt.Errorf("%w: the connection ended inside a record: %w", ErrTLS, io.ErrUnexpectedEOF)
	}
	m.close()
	return err
}

// truncated reports whether crypto/tls holds part of a record, once the
// peer has closed the connection.
func (l *Layer) truncated() bool {
	m := l.mc
	m.mu.Lock()
	m.eof = true
	m.mu.Unlock()
	var b [1]byte
	_, err := l.tc.Read(b[:])
	return errors.Is(err, io.ErrUnexpectedEOF)
}
