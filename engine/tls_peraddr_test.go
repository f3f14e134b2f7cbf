package engine_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
)

// TestTLSHandshakesPerAddr: one address that holds handshakes open (it
// connects and says nothing) takes at most a sixteenth of
// WithMaxHandshakes; its next connection is closed with the reason, and a
// client from another address still completes its handshake and echoes.
func TestTLSHandshakesPerAddr(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	logs := newLogRecorder()
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithLogger(slog.New(logs)),
		engine.WithMaxHandshakes(32), engine.WithHandshakeTimeout(time.Hour))
	ctx := testContext(t)
	addr := srv.Addr().String()
	from := func(ip string) *rawPeer {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: testTimeout}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		return &rawPeer{t: t, conn: c, r: bufio.NewReader(c), size: 64}
	}
	// The server accepts in order on its one loop: the silent peers'
	// handshakes have begun before the next connection opens.
	from("127.0.0.2")
	from("127.0.0.2")
	third := from("127.0.0.2")
	third.expectEOF()
	err := logs.handshakeFailure(t, ctx, third.conn.LocalAddr().String())
	if !errors.Is(err, engine.ErrTLSHandshake) || !strings.Contains(err.Error(), "the limit per address") {
		t.Errorf("reason: %v", err)
	}
	other := from("127.0.0.3")
	tc := tls.Client(other.conn, p.rawConfig())
	if err := tc.Handshake(); err != nil {
		t.Fatalf("another address's handshake: %v", err)
	}
	peer := &rawPeer{t: t, conn: tc, r: bufio.NewReader(tc)}
	peer.greet(1024)
	peer.echoOnce(`0{"through":true}`)
}
