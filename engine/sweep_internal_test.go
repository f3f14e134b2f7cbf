// This file pins that the sweep's write-deadline look at a connection whose
// output never waited allocates nothing: its notes live in connExtra only
// once an output has waited.

package engine

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/handler"
)

func TestSweepKeepsNoNotesForIdle(t *testing.T) {
	t.Parallel()
	srv, err := NewServer(handler.NewRouter(), WithWriteDeadline(time.Hour), WithMessageSize(128))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.StartOn(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(nc, make([]byte, 128)); err != nil { // the -2 frame
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
	var before, after bool
	var written0, written1 uint32
	runOnLoop(t, c, func() {
		before, written0 = c.x.Load() != nil, c.written
		for range 3 {
			c.loop.sweep(0, 2, 2)
		}
		after, written1 = c.x.Load() != nil, c.written
	})
	if before || written0 == 0 {
		t.Fatalf("before the sweeps: connExtra %v, written %d; the test needs a connection without one that wrote its -2 frame", before, written0)
	}
	if after {
		t.Error("the sweep allocated a connExtra for a connection whose output never waited")
	}
	if written1 != 0 {
		t.Errorf("written is %d after a look with nothing waiting, want it counted from there (0)", written1)
	}
}
