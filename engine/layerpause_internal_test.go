// This file tests that a paused connection's layer does no work: pings
// that arrive while reading is paused wait in gnet's buffer, unanswered,
// and are answered once reading resumes.

package engine

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/handler"
)

// runOnLoop runs fn on c's loop and waits for it.
func runOnLoop(t *testing.T, c *conn, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if err := c.loop.enqueue(task{kind: taskFunc, fn: func() { fn(); close(done) }}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the loop did not run the task")
	}
}

func TestPausedLayerDoesNoWork(t *testing.T) {
	srv, err := NewServer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.StartOn(context.Background(), WebSocketListener(ln, "/rpc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(nc)
	_, _ = io.WriteString(nc, "GET /rpc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// The -2 frame: 2 bytes of header, 126 and a 16-bit length.
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Discard(int(hdr[2])<<8 | int(hdr[3])); err != nil {
		t.Fatal(err)
	}

	var c *conn
	for c == nil {
		for _, l := range srv.side.eachLoop() {
			done := make(chan *conn, 1)
			_ = l.enqueue(task{kind: taskFunc, fn: func() {
				var found *conn
				if len(l.conns) > 0 {
					found = l.conns[0]
				}
				done <- found
			}}, nil)
			if found := <-done; found != nil {
				c = found
			}
		}
	}
	runOnLoop(t, c, func() { c.paused = true })

	ping := append([]byte{0x89, 0x82, 0, 0, 0, 0}, "hi"...)
	const pings = 5
	if _, err := nc.Write(bytes.Repeat(ping, pings)); err != nil {
		t.Fatal(err)
	}
	// Until all the pings are in gnet's buffer, unconsumed: the layer
	// took none of them (it would have, and answered them, if it worked).
	giveUp := time.Now().Add(30 * time.Second) // a bound for a failing test, not a wait
	for held := 0; held != pings*len(ping); {
		runOnLoop(t, c, func() { held = c.gc.InboundBuffered() })
		if held > pings*len(ping) || c.closed.Load() || time.Now().After(giveUp) {
			t.Fatalf("%d bytes held of %d, closed %v", held, pings*len(ping), c.closed.Load())
		}
	}
	runOnLoop(t, c, func() {
		if c.paused {
			c.resume()
		}
	})
	for i := range pings {
		var f [4]byte
		if _, err := io.ReadFull(r, f[:]); err != nil || f != [4]byte{0x8a, 2, 'h', 'i'} {
			t.Fatalf("pong %d: %x %v", i, f, err)
		}
	}
}
