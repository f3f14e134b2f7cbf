// This file tests that the frame deadline sees through the layers: an
// unfinished WebSocket frame, an unfinished WebSocket message and an
// unfinished TLS record each close the connection at the deadline, as an
// unfinished frame does on TCP.

package engine_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

const shortDeadline = 100 * time.Millisecond

// closedWith returns an option that reports each connection's close
// reason on the channel it returns.
func closedWith() (engine.Option, chan error) {
	ch := make(chan error, 4)
	return engine.WithOnDisconnect(func(_ handler.Conn, reason error) { ch <- reason }), ch
}

func TestWebSocketFrameDeadline(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		send func(w *rawWS)
	}{
		// A header announcing 100 bytes, and 10 of them.
		{"unfinished frame", func(w *rawWS) {
			if _, err := w.c.Write(append([]byte{0x81, 0x80 | 100, 0, 0, 0, 0}, "7{\"a\":1}  "...)); err != nil {
				t.Error(err)
			}
		}},
		// The first fragment of a message, then a ping answered: control
		// frames do not extend the wait for the message.
		{"unfinished message", func(w *rawWS) {
			w.frame(0x01, []byte(`7{"a":`), true)
			w.frame(0x89, []byte("hi"), true)
			if b0, p := w.next(); b0 != 0x8a || string(p) != "hi" {
				t.Errorf("pong %x %q", b0, p)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opt, closed := closedWith()
			_, _, url := startWS(t, echoRouter(), engine.WithFrameDeadline(shortDeadline), opt)
			w := upgraded(t, url)
			tc.send(w)
			select {
			case reason := <-closed:
				if !errors.Is(reason, engine.ErrFrameDeadline) {
					t.Fatalf("closed with %v, want %v", reason, engine.ErrFrameDeadline)
				}
			case <-testContext(t).Done():
				t.Fatal("not closed at the frame deadline")
			}
		})
	}
}

// stdTestCert returns the certificate of the standard library's test
// servers (for example.com and 127.0.0.1) and the pool that trusts it, not
// the suite's CA.
func stdTestCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	defer hs.Close()
	return hs.TLS.Certificates[0], hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

func TestTLSFrameDeadline(t *testing.T) {
	t.Parallel()
	cert, pool := stdTestCert(t)
	opt, closed := closedWith()
	srv := startServerOn(t, "tcp://127.0.0.1:0", echoRouter(), engine.WithFrameDeadline(shortDeadline), opt,
		engine.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	raw, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(testTimeout))
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "example.com"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	// The first -2 frame proves the handshake over on the server too.
	b := make([]byte, 1024)
	if _, err := tc.Read(b); err != nil {
		t.Fatal(err)
	}
	// An application-data record's header announcing 100 bytes, and 10.
	if _, err := raw.Write(append([]byte{0x17, 0x03, 0x03, 0, 100}, make([]byte, 10)...)); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-closed:
		if !errors.Is(reason, engine.ErrFrameDeadline) {
			t.Fatalf("closed with %v, want %v", reason, engine.ErrFrameDeadline)
		}
	case <-testContext(t).Done():
		t.Fatal("not closed at the frame deadline")
	}
}

// TestWebSocketTLSFrameDeadline: over wss://, a WebSocket frame left
// unfinished inside whole TLS records is seen through both layers.
func TestWebSocketTLSFrameDeadline(t *testing.T) {
	t.Parallel()
	cert, pool := stdTestCert(t)
	opt, closed := closedWith()
	srv := startServerOn(t, "wss://127.0.0.1:0/rpc", echoRouter(), engine.WithFrameDeadline(shortDeadline), opt,
		engine.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	raw, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(testTimeout))
	tc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "example.com"})
	w := &rawWS{t: t, c: tc, r: bufio.NewReader(tc)}
	if got := w.status(upgradeRequest("/rpc", "GET", "Sec-WebSocket-Key: "+goodKey)); got != 101 {
		t.Fatalf("status %d", got)
	}
	if b0, _ := w.next(); b0 != 0x81 {
		t.Fatalf("first message %x", b0)
	}
	// A header announcing 100 bytes, and 10 of them, in one whole record.
	if _, err := tc.Write(append([]byte{0x81, 0x80 | 100, 0, 0, 0, 0}, "7{\"a\":1}  "...)); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-closed:
		if !errors.Is(reason, engine.ErrFrameDeadline) {
			t.Fatalf("closed with %v, want %v", reason, engine.ErrFrameDeadline)
		}
	case <-testContext(t).Done():
		t.Fatal("not closed at the frame deadline")
	}
}
