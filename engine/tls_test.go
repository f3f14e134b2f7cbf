// Tests of TLS on the event loop: the test PKI and helpers, echoes and
// calls over TLS, mutual authentication and the TLS options.

package engine_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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
			st, ok := engine.TLSState(cl.Conn())
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
