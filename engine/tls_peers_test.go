// Tests of TLS against peers that misbehave or stall: bad certificates and
// records, handshake time-outs and caps, a shutdown during a handshake.

package engine_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

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
