package engine_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
)

// ---- Certificates, made for each test: no key is ever committed ----

// pki is testkit's test CA (a server certificate for 127.0.0.1 and
// localhost, a client certificate of CN client-1) with the configs these
// tests use.
type pki struct {
	*testkit.CA
	pool *x509.CertPool
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testkit.NewCA(t)
	return &pki{CA: ca, pool: ca.Pool}
}

// file returns the path of a PEM file for openssl and Python: ca.pem,
// server.pem/.key, client-1.pem/.key.
func (p *pki) file(name string) string { return p.File(name) }

// serverConfig is the server's TLS config; mutual asks for and verifies a
// client certificate.
func (p *pki) serverConfig(mutual bool) *tls.Config {
	cfg := p.ServerConfig(mutual)
	cfg.NextProtos = []string{"simplerpc"}
	return cfg
}

// clientConfig trusts the CA; ServerName is left to the engine.
func (p *pki) clientConfig(withCert bool) *tls.Config {
	cfg := p.ClientConfig(withCert)
	cfg.NextProtos = []string{"simplerpc"}
	return cfg
}

// rawConfig is the config of a crypto/tls peer written here.
func (p *pki) rawConfig() *tls.Config {
	cfg := p.ClientConfig(false)
	cfg.ServerName = "localhost"
	return cfg
}

// ---- Observing the server: its log and its disconnect reasons ----

// logRecorder is a slog.Handler that keeps every record's message and
// attributes, for the tests to find the reason a connection closed.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
	notify  chan struct{}
}

type logRecord struct {
	msg   string
	attrs map[string]any
}

func newLogRecorder() *logRecorder { return &logRecorder{notify: make(chan struct{}, 1)} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return nil
}

// handshakeFailure waits for the log line of the failed handshake of the
// connection from remote, and returns its error.
func (h *logRecorder) handshakeFailure(t *testing.T, ctx context.Context, remote string) error {
	t.Helper()
	for {
		h.mu.Lock()
		for _, r := range h.records {
			if r.msg == "simplerpc: TLS handshake failed" && r.attrs["remote"] == remote {
				h.mu.Unlock()
				err, _ := r.attrs["err"].(error)
				return err
			}
		}
		h.mu.Unlock()
		select {
		case <-h.notify:
		case <-ctx.Done():
			t.Fatalf("no handshake failure logged for %s", remote)
			return nil
		}
	}
}

// reasons collects the disconnect reasons of a server's connections, by
// remote address.
type reasons struct {
	mu     sync.Mutex
	by     map[string]error
	notify chan struct{}
}

func newReasons() *reasons { return &reasons{by: map[string]error{}, notify: make(chan struct{}, 1)} }

func (r *reasons) option() engine.Option {
	return engine.WithOnDisconnect(func(c handler.Conn, reason error) {
		r.mu.Lock()
		r.by[c.RemoteAddr()] = reason
		r.mu.Unlock()
		select {
		case r.notify <- struct{}{}:
		default:
		}
	})
}

func (r *reasons) wait(t *testing.T, ctx context.Context, remote string) error {
	t.Helper()
	for {
		r.mu.Lock()
		err, ok := r.by[remote]
		r.mu.Unlock()
		if ok {
			return err
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			t.Fatalf("no disconnect for %s", remote)
			return nil
		}
	}
}

func (r *reasons) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.by)
}

// ---- Peers ----

// startTLSServer starts a TLS server on tls://127.0.0.1:0.
func startTLSServer(t *testing.T, r *handler.Router, cfg *tls.Config, opts ...engine.ServerOption) *engine.Server {
	t.Helper()
	return startServerOn(t, "tls://127.0.0.1:0", r, append([]engine.ServerOption{engine.WithTLS(cfg)}, opts...)...)
}

// dialTLSRaw is a crypto/tls peer that reads and writes frames by hand.
func dialTLSRaw(t *testing.T, addr string, cfg *tls.Config) (*rawPeer, *tls.Conn) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, cfg)
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(testTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &rawPeer{t: t, conn: tc, r: bufio.NewReader(tc)}, tc
}

// echoOnce checks one opcode-0 round trip of a raw peer.
func (p *rawPeer) echoOnce(text string) {
	p.t.Helper()
	p.write(text)
	op, obj := p.read()
	if op != 0 || !strings.Contains(text, string(obj)) {
		p.t.Fatalf("echo of %q: op %d %s", text, op, obj)
	}
}

// echoClient dials a TLS client whose echoes arrive in a recorder.
func echoClient(t *testing.T, ctx context.Context, addr string, opts ...engine.ClientOption) (*engine.Client, *recorder) {
	t.Helper()
	got := newRecorder()
	r := handler.NewRouter()
	r.On(0, func(_ handler.Conn, data []byte) error { got.add(string(data)); return nil })
	cl, err := engine.Dial(ctx, addr, r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	return cl, got
}

// ---- Tests ----

// TestTLSEcho echoes frames over TLS between our server and our client, and
// a crypto/tls peer, with one and two event loops and a worker pool, with
// frames of several records each, sent in bursts that straddle records.
func TestTLSEcho(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		size int
		opts []engine.Option
	}{
		{"size256", 256, nil},
		{"size40k-multicore", 40 << 10, []engine.Option{engine.WithEventLoops(2)}},
		{"size1024-workers", 1024, []engine.Option{engine.WithWorkerPool(2, 1024)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sopts []engine.ServerOption
			var copts []engine.ClientOption
			for _, o := range tc.opts {
				sopts, copts = append(sopts, o), append(copts, o)
			}
			sopts = append(sopts, engine.WithMessageSize(tc.size))
			srv := startTLSServer(t, echoRouter(), p.serverConfig(false), sopts...)
			ctx := testContext(t)
			addr := "tls://" + srv.Addr().String()
			cl, got := echoClient(t, ctx, addr, append(copts, engine.WithTLS(p.clientConfig(false)))...)
			// As many frames as the outbound budget (4 MiB) allows at once.
			burst := min(300, (2<<20)/tc.size)
			fill := strings.Repeat("x", tc.size-40)
			for i := range burst {
				if err := cl.Send(0, struct {
					I int    `json:"i"`
					F string `json:"f"`
				}{i, fill[:i*len(fill)/burst]}); err != nil {
					t.Fatal(err)
				}
			}
			frames := got.wait(t, burst)
			for i, f := range frames {
				if !strings.HasPrefix(f, fmt.Sprintf(`{"i":%d,`, i)) {
					t.Fatalf("frame %d out of order: %.40s", i, f)
				}
			}
			if cl.MessageSize() != tc.size {
				t.Errorf("message size %d", cl.MessageSize())
			}
			st, ok := engine.TLSState(cl)
			if !ok || st.NegotiatedProtocol != "simplerpc" || st.PeerCertificates[0].Subject.CommonName != "server" {
				t.Errorf("client's TLS state: %v %+v", ok, st)
			}
			raw, _ := dialTLSRaw(t, srv.Addr().String(), p.rawConfig())
			raw.greet(tc.size)
			raw.echoOnce(`0{"raw":"crypto/tls"}`)
		})
	}
}

// TestTLSTrickle sends the server a TLS stream, handshake included, in
// writes of a few bytes each, so that its reads cut records and their
// headers anywhere.
func TestTLSTrickle(t *testing.T) {
	p := newPKI(t)
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithMessageSize(256))
	nc, err := net.DialTimeout("tcp", srv.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(&trickleConn{Conn: nc}, p.rawConfig())
	t.Cleanup(func() { tc.Close() })
	_ = tc.SetDeadline(time.Now().Add(testTimeout))
	peer := &rawPeer{t: t, conn: tc, r: bufio.NewReader(tc)}
	peer.greet(256)
	for i := range 20 {
		peer.echoOnce(fmt.Sprintf(`0{"i":%d,"s":"%s"}`, i, strings.Repeat("t", i*10)))
	}
}

// trickleConn writes in pieces of 1 to 13 bytes.
type trickleConn struct {
	net.Conn
	n int
}

func (c *trickleConn) Write(b []byte) (int, error) {
	for off := 0; off < len(b); {
		c.n++
		k := min(len(b)-off, 1+c.n%13)
		if _, err := c.Conn.Write(b[off : off+k]); err != nil {
			return off, err
		}
		off += k
	}
	return len(b), nil
}

// TestTLSCalls makes calls both ways over TLS: the client calls the server,
// and the server calls the client back by net id, many at once.
func TestTLSCalls(t *testing.T) {
	p := newPKI(t)
	ids := make(chan uint64, 1)
	sr, cr := callRouters()
	srv := startTLSServer(t, sr, p.serverConfig(false), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	ctx := testContext(t)
	cl, err := engine.Dial(ctx, srv.Addr().String(), cr, engine.WithTLS(p.clientConfig(false)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	id := <-ids
	callBothWays(ctx, t, cl, srv, id)
}

// TestTLSMutual requires a client certificate: the handler sees the peer's
// certificate through TLSState, and a client without one is refused, with
// a reason on both sides, while the other connection goes on.
func TestTLSMutual(t *testing.T) {
	p := newPKI(t)
	logs := newLogRecorder()
	r := echoRouter()
	r.On(7, func(c handler.Conn, _ []byte) error {
		st, ok := engine.TLSState(c)
		if !ok || len(st.PeerCertificates) == 0 {
			return handler.ArgumentMissing("no peer certificate")
		}
		return c.Send(7, map[string]any{"cn": st.PeerCertificates[0].Subject.CommonName, "alpn": st.NegotiatedProtocol})
	})
	connected := make(chan handler.Conn, 4)
	srv := startTLSServer(t, r, p.serverConfig(true), engine.WithLogger(slog.New(logs)),
		engine.WithOnConnect(func(c handler.Conn) { connected <- c }))
	ctx := testContext(t)

	got := newRecorder()
	cr := handler.NewRouter()
	cr.On(7, func(_ handler.Conn, data []byte) error { got.add(string(data)); return nil })
	cl, err := engine.Dial(ctx, "tls://"+srv.Addr().String(), cr, engine.WithTLS(p.clientConfig(true)), engine.WithDialNoWait())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	if err := cl.Send(7, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if f := got.wait(t, 1)[0]; f != `{"alpn":"simplerpc","cn":"client-1"}` {
		t.Errorf("handler saw %s", f)
	}
	sc := <-connected
	if st, ok := engine.TLSState(sc); !ok || st.PeerCertificates[0].Subject.CommonName != "client-1" || st.Version < tls.VersionTLS12 {
		t.Errorf("server's TLS state of the connection: %v %+v", ok, st)
	}
	if _, ok := engine.TLSState(nil); ok {
		t.Error("TLSState(nil) reports a state")
	}

	// No certificate: the server refuses the handshake. In TLS 1.3 the
	// client learns it from the server's alert, after its own handshake.
	bare, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(), engine.WithTLS(p.clientConfig(false)), engine.WithDialNoWait())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-bare.Done():
	case <-ctx.Done():
		t.Fatal("a client without a certificate stays connected")
	}
	if err := bare.Err(); !errors.Is(err, engine.ErrTLS) && !errors.Is(err, engine.ErrTLSHandshake) {
		t.Errorf("client without a certificate: %v", err)
	}
	// The server logged why, with crypto/tls's error inside.
	var rerr error
	for rerr == nil {
		logs.mu.Lock()
		for _, rec := range logs.records {
			if rec.msg == "simplerpc: TLS handshake failed" {
				rerr, _ = rec.attrs["err"].(error)
			}
		}
		logs.mu.Unlock()
		if rerr == nil {
			select {
			case <-logs.notify:
			case <-ctx.Done():
				t.Fatal("no handshake failure logged")
			}
		}
	}
	if !errors.Is(rerr, engine.ErrTLSHandshake) || !strings.Contains(rerr.Error(), "certificate") {
		t.Errorf("server's reason: %v", rerr)
	}
	if err := cl.Send(7, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 2)
}

// TestTLSOptions covers the setup errors and the copy of the caller's
// config.
func TestTLSOptions(t *testing.T) {
	p := newPKI(t)
	r := handler.NewRouter()
	for _, tc := range []struct {
		name string
		opts []engine.ServerOption
		want string
	}{
		{"nil config", []engine.ServerOption{engine.WithTLS(nil)}, "WithTLS: nil config"},
		{"no certificate", []engine.ServerOption{engine.WithTLS(&tls.Config{})}, "a server needs a certificate"},
		{"timeout", []engine.ServerOption{engine.WithHandshakeTimeout(0)}, "WithHandshakeTimeout"},
		{"max", []engine.ServerOption{engine.WithMaxHandshakes(0)}, "WithMaxHandshakes"},
	} {
		if _, err := engine.NewServer(r, tc.opts...); !errors.Is(err, engine.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := engine.NewDialer(r, engine.WithTLS(nil)); !errors.Is(err, engine.ErrInvalidOption) {
		t.Errorf("dialer with a nil config: %v", err)
	}

	// tls:// needs WithTLS, on both sides.
	plain, err := engine.NewServer(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Start(context.Background(), "tls://127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "tls:// needs the WithTLS option") {
		t.Errorf("plain server on tls://: %v", err)
	}
	_ = plain.Close()
	ctx := testContext(t)
	if _, err := engine.Dial(ctx, "tls://127.0.0.1:1", r); err == nil || !strings.Contains(err.Error(), "tls:// needs the WithTLS option") {
		t.Errorf("plain dial of tls://: %v", err)
	}

	// The caller's config is cloned: the engine's changes do not reach it,
	// and its later changes do not reach the engine.
	cfg := p.serverConfig(false)
	srv := startTLSServer(t, echoRouter(), cfg)
	if cfg.DynamicRecordSizingDisabled || cfg.Renegotiation != tls.RenegotiateNever || len(cfg.Certificates) != 1 {
		t.Errorf("caller's config changed: %+v", cfg)
	}
	cfg.Certificates = nil
	ccfg := p.clientConfig(false)
	cl, got := echoClient(t, ctx, srv.Addr().String(), engine.WithTLS(ccfg))
	ccfg.RootCAs = nil
	if ccfg.ServerName != "" {
		t.Errorf("the engine set the caller's ServerName: %q", ccfg.ServerName)
	}
	if err := cl.Send(0, map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1)
}

// TestTLSBadPeers sends the server peers that fail in every way:
// plaintext, trusting another CA, truncating a record, sending garbage or
// ending TLS with close_notify after the handshake. Each closes only its
// own connection with a reason; a client echoes through it all.
func TestTLSBadPeers(t *testing.T) {
	p := newPKI(t)
	logs := newLogRecorder()
	rs := newReasons()
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithLogger(slog.New(logs)), rs.option())
	ctx := testContext(t)
	good, got := echoClient(t, ctx, srv.Addr().String(), engine.WithTLS(p.clientConfig(false)))
	echoes := 0
	stillEchoing := func(t *testing.T) {
		t.Helper()
		echoes++
		if err := good.Send(0, map[string]any{"n": echoes}); err != nil {
			t.Fatal(err)
		}
		got.wait(t, echoes)
	}
	stillEchoing(t)
	addr := srv.Addr().String()

	t.Run("plaintext", func(t *testing.T) {
		raw := dialRaw(t, addr)
		raw.size = 256
		raw.write(`0{"plain":"text"}`)
		raw.expectEOF()
		err := logs.handshakeFailure(t, ctx, raw.conn.LocalAddr().String())
		var rh tls.RecordHeaderError
		if !errors.Is(err, engine.ErrTLSHandshake) || !errors.As(err, &rh) {
			t.Errorf("reason: %v", err)
		}
		stillEchoing(t)
	})
	t.Run("wrong CA", func(t *testing.T) {
		other := newPKI(t)
		cl, err := engine.Dial(ctx, addr, handler.NewRouter(), engine.WithTLS(other.clientConfig(false)), engine.WithDialNoWait())
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("client trusting another CA stays connected")
		}
		var cv *tls.CertificateVerificationError
		var ua x509.UnknownAuthorityError
		if err := cl.Err(); !errors.Is(err, engine.ErrTLSHandshake) || !errors.As(err, &cv) || !errors.As(err, &ua) {
			t.Errorf("client's reason: %v", err)
		}
		stillEchoing(t)
	})
	t.Run("truncated record", func(t *testing.T) {
		nc, err := net.DialTimeout("tcp", addr, testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		hc := &holdConn{Conn: nc}
		tc := tls.Client(hc, p.rawConfig())
		_ = tc.SetDeadline(time.Now().Add(testTimeout))
		peer := &rawPeer{t: t, conn: tc, r: bufio.NewReader(tc)}
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		peer.greet(1024)
		hc.hold = true
		peer.write(`0{"cut":"short"}`)
		// Half the record, then the end of the connection.
		if _, err := nc.Write(hc.held[:len(hc.held)/2]); err != nil {
			t.Fatal(err)
		}
		nc.(*net.TCPConn).CloseWrite()
		err = rs.wait(t, ctx, nc.LocalAddr().String())
		if !errors.Is(err, engine.ErrTLS) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reason: %v", err)
		}
		stillEchoing(t)
	})
	t.Run("garbage", func(t *testing.T) {
		peer, tc := dialTLSRaw(t, addr, p.rawConfig())
		peer.greet(1024)
		peer.echoOnce(`0{"before":"garbage"}`)
		// An application-data record the size of a frame's, that no key
		// encrypted: the MAC cannot match.
		junk := make([]byte, 5+1024+17)
		copy(junk, []byte{23, 3, 3, 4, 17})
		rand.Read(junk[5:])
		nc := tc.NetConn()
		if _, err := nc.Write(junk); err != nil {
			t.Fatal(err)
		}
		err := rs.wait(t, ctx, nc.LocalAddr().String())
		if !errors.Is(err, engine.ErrTLS) || !strings.Contains(err.Error(), "bad record MAC") {
			t.Errorf("reason: %v", err)
		}
		// The peer hears why: the alert, then the end.
		buf := make([]byte, 1024)
		if _, err := io.ReadFull(peer.r, buf); err == nil || !strings.Contains(err.Error(), "bad record MAC") {
			t.Errorf("peer read: %v", err)
		}
		stillEchoing(t)
	})
	t.Run("close_notify", func(t *testing.T) {
		peer, tc := dialTLSRaw(t, addr, p.rawConfig())
		peer.greet(1024)
		// A frame and close_notify at once: the frame is still answered.
		peer.write(`0{"last":"words"}`)
		if err := tc.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if op, obj := peer.read(); op != 0 || string(obj) != `{"last":"words"}` {
			t.Errorf("echo before the close: %d %s", op, obj)
		}
		// Then the server's own close_notify: a clean io.EOF.
		buf := make([]byte, 1)
		if _, err := peer.r.Read(buf); err != io.EOF {
			t.Errorf("after close_notify: %v, want io.EOF", err)
		}
		err := rs.wait(t, ctx, tc.LocalAddr().String())
		if !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "close_notify") {
			t.Errorf("reason: %v", err)
		}
		stillEchoing(t)
	})
	if n := rs.count(); n != 3 {
		t.Errorf("%d disconnects, want the 3 connections that finished their handshake", n)
	}
	select {
	case <-good.Done():
		t.Fatalf("the good client closed: %v", good.Err())
	default:
	}
}

// TestTLSHandshakeTimeout connects a peer that sends nothing: it is closed
// at the handshake deadline with a reason that says so, and a client that
// finished its handshake goes on echoing.
func TestTLSHandshakeTimeout(t *testing.T) {
	p := newPKI(t)
	logs := newLogRecorder()
	const deadline = 500 * time.Millisecond
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithLogger(slog.New(logs)),
		engine.WithHandshakeTimeout(deadline))
	ctx := testContext(t)
	// A loaded machine may take longer than the deadline over a good
	// client's handshake too: dial until one is ready.
	var good *engine.Client
	var got *recorder
	for good == nil {
		got = newRecorder()
		r := handler.NewRouter()
		r.On(0, func(_ handler.Conn, data []byte) error { got.add(string(data)); return nil })
		cl, err := engine.Dial(ctx, srv.Addr().String(), r, engine.WithTLS(p.clientConfig(false)))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-cl.Ready():
			good = cl
			t.Cleanup(func() { cl.Close(); <-cl.Done() })
		case <-cl.Done():
			if !errors.Is(cl.Err(), engine.ErrTLSHandshake) {
				t.Fatalf("good client: %v", cl.Err())
			}
		case <-ctx.Done():
			t.Fatal("no good client got ready")
		}
	}
	raw := dialRaw(t, srv.Addr().String())
	raw.size = 64
	raw.expectEOF()
	err := logs.handshakeFailure(t, ctx, raw.conn.LocalAddr().String())
	if !errors.Is(err, engine.ErrTLSHandshake) || !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "not over within "+deadline.String()) {
		t.Errorf("reason: %v", err)
	}
	if err := good.Send(0, map[string]any{"after": "timeout"}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, 1)
}

// holdConn keeps what is written while hold is set, instead of sending it.
type holdConn struct {
	net.Conn
	hold bool
	held []byte
}

func (c *holdConn) Write(b []byte) (int, error) {
	if c.hold {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// TestTLSMaxHandshakes fills the cap of handshakes in progress with a
// silent peer: the next connection is closed at once with the reason, and
// one gets through once the silent peer is gone.
func TestTLSMaxHandshakes(t *testing.T) {
	p := newPKI(t)
	logs := newLogRecorder()
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithLogger(slog.New(logs)),
		engine.WithMaxHandshakes(1), engine.WithHandshakeTimeout(time.Hour))
	ctx := testContext(t)
	addr := srv.Addr().String()
	silent := dialRaw(t, addr)
	// The server accepts in order on its one loop: the silent peer's
	// handshake has begun before the next connection opens.
	next := dialRaw(t, addr)
	next.size = 64
	next.expectEOF()
	err := logs.handshakeFailure(t, ctx, next.conn.LocalAddr().String())
	if !errors.Is(err, engine.ErrTLSHandshake) || !strings.Contains(err.Error(), "1 handshakes in progress") {
		t.Errorf("reason: %v", err)
	}
	silent.conn.Close()
	// The slot is free once the silent peer's goroutine has seen the close:
	// try until a handshake gets through.
	for {
		nc, err := net.DialTimeout("tcp", addr, testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(nc, p.rawConfig())
		_ = tc.SetDeadline(time.Now().Add(testTimeout))
		peer := &rawPeer{t: t, conn: tc, r: bufio.NewReader(tc)}
		herr := tc.Handshake()
		if herr == nil {
			// In TLS 1.3 the client's handshake is over before the server's:
			// a refused one shows as the end of the connection here.
			if _, err := peer.r.Peek(1); err == nil {
				peer.greet(1024)
				peer.echoOnce(`0{"through":true}`)
				tc.Close()
				return
			}
		}
		tc.Close()
		select {
		case <-ctx.Done():
			t.Fatalf("no handshake got through after the silent peer left: %v", herr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestTLSShutdownDuringHandshake stops a server and a dialer while
// handshakes are in progress: both return at once, not at the handshake
// deadline, and leave no goroutine (TestMain checks).
func TestTLSShutdownDuringHandshake(t *testing.T) {
	p := newPKI(t)
	srv, err := engine.NewServer(echoRouter(), engine.WithTLS(p.serverConfig(false)), engine.WithHandshakeTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		dialRaw(t, srv.Addr().String())
	}
	// A listener that accepts and never answers: the client's handshake
	// waits.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	ctx := testContext(t)
	d, err := engine.NewDialer(handler.NewRouter(), engine.WithTLS(p.clientConfig(false)), engine.WithHandshakeTimeout(time.Hour), engine.WithDialNoWait())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := d.Dial(ctx, "tls://"+ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if c := <-accepted; c != nil {
		defer c.Close()
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("server shutdown during handshakes: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	<-cl.Done()
	if err := cl.Err(); !errors.Is(err, engine.ErrShutdown) {
		t.Errorf("client's reason: %v", err)
	}
}

// ---- Peers no one here wrote ----

// TestTLSOpenSSLClient runs `openssl s_client` against our server, with and
// without a client certificate: it reads the -2 frame, sends a frame,
// reads its echo and ends with close_notify.
func TestTLSOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is required for this test (Debian: apt-get install -y openssl): %v", err)
	}
	p := newPKI(t)
	r := echoRouter()
	r.On(7, func(c handler.Conn, _ []byte) error {
		st, _ := engine.TLSState(c)
		cn := ""
		if len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
		}
		return c.Send(0, map[string]any{"cn": cn})
	})
	cfg := p.serverConfig(false)
	cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, p.pool
	rs := newReasons()
	srv := startTLSServer(t, r, cfg, rs.option())
	for _, withCert := range []bool{false, true} {
		t.Run(fmt.Sprintf("cert=%v", withCert), func(t *testing.T) {
			ctx := testContext(t)
			args := []string{"s_client", "-connect", srv.Addr().String(), "-CAfile", p.file("ca.pem"),
				"-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet", "-no_ign_eof"}
			want := `{"cn":""}`
			if withCert {
				args = append(args, "-cert", p.file("client-1.pem"), "-key", p.file("client-1.key"))
				want = `{"cn":"client-1"}`
			}
			cmd := exec.CommandContext(ctx, bin, args...)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			frame := func() string {
				buf := make([]byte, 1024)
				if _, err := io.ReadFull(stdout, buf); err != nil {
					t.Fatalf("read from openssl: %v\n%s", err, stderr.String())
				}
				return strings.TrimRight(string(buf), " ")
			}
			pad := func(s string) []byte { return []byte(s + strings.Repeat(" ", 1024-len(s))) }
			if f := frame(); f != `-2{"message_size":1024}` {
				t.Fatalf("first frame %q", f)
			}
			stdin.Write(pad(`0{"from":"openssl"}`))
			if f := frame(); f != `0{"from":"openssl"}` {
				t.Errorf("echo %q", f)
			}
			stdin.Write(pad(`7{}`))
			if f := frame(); f != "0"+want {
				t.Errorf("peer certificate seen by the handler: %q", f)
			}
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("openssl: %v\n%s", err, stderr.String())
			}
		})
	}
}

// TestTLSPythonClient runs Python's ssl module (OpenSSL underneath) as a
// client of our server: -2 first, echoes, a failure frame, close_notify
// both ways; then again with a client certificate the server requires.
func TestTLSPythonClient(t *testing.T) {
	py := python(t)
	p := newPKI(t)
	for _, mutual := range []bool{false, true} {
		t.Run(fmt.Sprintf("mutual=%v", mutual), func(t *testing.T) {
			rs := newReasons()
			srv := startTLSServer(t, echoRouter(), p.serverConfig(mutual), engine.WithMessageSize(256), rs.option())
			ctx := testContext(t)
			args := []string{"testdata/pytls.py", "client", "--addr", srv.Addr().String(), "--size", "256",
				"--ca", p.file("ca.pem")}
			if mutual {
				args = append(args, "--cert", p.file("client-1.pem"), "--key", p.file("client-1.key"))
			}
			out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ok client") {
				t.Fatalf("pytls client: %v\n%s", err, out)
			}
			for rs.count() == 0 {
				select {
				case <-rs.notify:
				case <-ctx.Done():
					t.Fatal("no disconnect")
				}
			}
			rs.mu.Lock()
			defer rs.mu.Unlock()
			for _, err := range rs.by {
				if !errors.Is(err, io.EOF) {
					t.Errorf("reason: %v, want the peer's close_notify", err)
				}
			}
		})
	}
}

// TestTLSGoClientAgainstPythonServer runs our TLS client against a Python
// ssl server that speaks like the original: -2 first, then opcode 1,
// echoes of opcode 0, a failure for opcode 5.
func TestTLSGoClientAgainstPythonServer(t *testing.T) {
	p := newPKI(t)
	ctx := testContext(t)
	port, wait := startPyServer(t, "testdata/pytls.py", "server", "--size", "256",
		"--cert", p.file("server.pem"), "--key", p.file("server.key"))
	addr := "tls://127.0.0.1:" + port

	got := newRecorder()
	failures := make(chan *handler.Error, 1)
	r := handler.NewRouter()
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		got.add(fmt.Sprintf("%d%s", op, data))
		return nil
	})
	handler.Handle(r, codec.OpFailure, func(_ handler.Conn, f *handler.Error) error { failures <- f; return nil })
	cl, err := engine.Dial(ctx, addr, r, engine.WithTLS(p.clientConfig(false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(0, map[string]any{"some_data": 123}); err != nil {
		t.Fatal(err)
	}
	frames := got.wait(t, 2)
	if frames[0] != `1{"some_data": "this is sent to whoever just connected"}` || frames[1] != `0{"some_data": 123}` {
		t.Errorf("frames %q", frames)
	}
	if err := cl.Send(5, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-failures:
		if f.Reason != "ArgumentMissing" {
			t.Errorf("failure %+v", f)
		}
	case <-ctx.Done():
		t.Fatal("no failure frame")
	}
	if st, ok := engine.TLSState(cl); !ok || st.PeerCertificates[0].Subject.CommonName != "server" {
		t.Errorf("TLS state %v %+v", ok, st)
	}
	cl.Close()
	<-cl.Done()
	if rest := wait(); !strings.Contains(rest, "ok server") {
		t.Errorf("pytls server: %s", rest)
	}
}

// TestTLSIdleHoldsNoBuffer: a TLS connection that has exchanged frames and
// gone idle holds no plaintext buffer of its own (its loop lends one while
// records are decoded): 10,000 idle TLS connections held 16 KiB each
// before.
func TestTLSIdleHoldsNoBuffer(t *testing.T) {
	p := newPKI(t)
	conns := make(chan handler.Conn, 1)
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithOnConnect(func(c handler.Conn) { conns <- c }))
	ctx := testContext(t)
	got := make(chan struct{}, 16)
	cr := handler.NewRouter()
	cr.On(1, func(handler.Conn, []byte) error { got <- struct{}{}; return nil })
	cl, err := engine.Dial(ctx, srv.Addr().String(), cr, engine.WithTLS(p.clientConfig(false)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	sc := waitFor(ctx, t, conns, "the connection")
	for i := range 10 {
		if err := cl.Send(1, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, got, "the echo")
	}
	if n := engine.LayerBuffers(sc); n != 0 {
		t.Fatalf("the idle TLS connection holds a %d-byte plaintext buffer", n)
	}
}
