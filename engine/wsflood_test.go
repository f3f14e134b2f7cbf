// This file tests that the bytes a layer makes by itself (WebSocket pongs)
// count against the connection's outbound cap: a peer that sends pings
// and never reads is closed by the slow-consumer policy or the write
// deadline, with what it makes the server hold bounded, while a healthy
// peer on the same loop keeps echoing.

package engine_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

func TestWebSocketPingFloodBounded(t *testing.T) {
	t.Parallel()
	const outCap = 256 << 10
	cases := []struct {
		name   string
		policy engine.SlowPolicy
		want   error
	}{
		// SlowClose: the pong past the cap closes the flooder.
		{"slow close", engine.SlowClose, engine.ErrSlowConsumer},
		// SlowDrop: pongs past the cap are dropped; the kernel takes
		// nothing, so the write deadline closes the flooder.
		{"slow drop", engine.SlowDrop, engine.ErrWriteDeadline},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The first connection to close is the flooder's: the healthy
			// peer stays until the test ends.
			closed := make(chan error, 2)
			srv, _, url := startWS(t, echoRouter(), engine.WithEventLoops(1),
				engine.WithMaxOutbound(outCap, tc.policy), engine.WithWriteDeadline(200*time.Millisecond),
				engine.WithOnDisconnect(func(_ handler.Conn, reason error) { closed <- reason }))

			healthy := dialWS(t, url)
			flooder := upgraded(t, url)
			// RFC 6455 §5.5.2: a masked ping of 125 bytes (mask 0), as in
			// the reproduction.
			ping := append([]byte{0x89, 0xfd, 0, 0, 0, 0}, bytes.Repeat([]byte("p"), 125)...)
			batch := bytes.Repeat(ping, 2000)
			var stop atomic.Bool
			flooded := make(chan int, 1)
			go func() {
				n := 0
				// Bounded: 256 batches are 33 MB, past any socket buffer.
				for ; n < 256 && !stop.Load(); n++ {
					if _, err := flooder.c.Write(batch); err != nil {
						break
					}
				}
				flooded <- n
			}()
			t.Cleanup(func() { stop.Store(true); <-flooded })

			var reason error
			echoes := 0
			msg := `7{"n":1}`
			for reason == nil || echoes < 20 {
				healthy.write(websocket.MessageText, msg)
				if _, obj := healthy.read(); string(obj) != `{"n":1}` {
					t.Fatalf("echo %s", obj)
				}
				echoes++
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				b, err := srv.Host().Backlog(ctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				// What the flooder makes the server hold: pongs, within the
				// cap and one pong more.
				if b.MaxBytes > outCap+128 {
					t.Fatalf("after %d echoes a connection holds %d bytes, over the cap of %d", echoes, b.MaxBytes, outCap)
				}
				select {
				case reason = <-closed:
				default:
				}
				if echoes > 100000 {
					t.Fatal("the flooder was not closed")
				}
			}
			if !errors.Is(reason, tc.want) {
				t.Fatalf("flooder closed with %v, want %v", reason, tc.want)
			}
			if strings.Contains(reason.Error(), "WebSocket") {
				t.Fatalf("closed for a protocol error: %v", reason)
			}
		})
	}
}

// TestTLSHandshakeUnderSmallCap: a handshake's own bytes (the server's
// flight, its certificate) are counted but not capped, so a cap smaller
// than them still admits peers; the frames after it are capped as ever.
func TestTLSHandshakeUnderSmallCap(t *testing.T) {
	t.Parallel()
	cert, pool := stdTestCert(t)
	srv := startServerOn(t, "tcp://127.0.0.1:0", echoRouter(), engine.WithMaxOutbound(1024, engine.SlowClose),
		engine.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	p, tc := dialTLSRaw(t, srv.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "example.com"})
	if st := tc.ConnectionState(); len(st.PeerCertificates) == 0 || len(st.PeerCertificates[0].Raw) < 512 {
		t.Fatalf("the certificate is too small to test the cap")
	}
	p.greet(codec.DefaultMessageSize)
	p.echoOnce(`0{"a":1}`)
}
