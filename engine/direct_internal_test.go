// This file tests the direct path of SendRaw (sendHanded, direct.go) over
// the fake wire of traffic_internal_test.go: an inline echo of the object
// handed is built straight into the connection's output, queues nothing
// on the loop and reaches the wire byte for byte; one that a send queued
// before it would overtake takes the queue.

package engine

import (
	"bytes"
	"sync"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// recWire is a fake wire that keeps what is written to it.
type recWire struct {
	*fakeWire
	out []byte
}

func (w *recWire) Write(b []byte) (int, error) {
	w.out = append(w.out, b...)
	return w.fakeWire.Write(b)
}

// directOnFake is echoOnFake with the router r and a wire that keeps what
// is written after the connection opened.
func directOnFake(t *testing.T, size int, r *handler.Router) (*conn, *recWire) {
	t.Helper()
	c, w := echoOnFake(t, size)
	c.side.router = r
	rw := &recWire{fakeWire: w}
	c.gc = rw
	return c, rw
}

// TestDirectEchoQueuesNothing: sixteen frames read at once, each echoed by
// its callback from the loop, then from a goroutine the callback hands the
// slice to and waits for: every echo is built straight into the output
// (handed.direct), no task is queued on the loop, and the wire gets the
// frames read, byte for byte, in order, in one write.
func TestDirectEchoQueuesNothing(t *testing.T) {
	const size, k = 256, 16
	for _, viaGoroutine := range []bool{false, true} {
		r := handler.NewRouter()
		var c *conn
		var queued []int
		r.On(0, func(hc handler.Conn, data []byte) error {
			var err error
			if viaGoroutine {
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					err = hc.SendRaw(0, data)
				}()
				wg.Wait()
			} else {
				err = hc.SendRaw(0, data)
			}
			queued = append(queued, len(c.loop.tasks)) // the loop waits in this callback: no lock needed
			return err
		})
		c, w := directOnFake(t, size, r)
		l := c.loop
		frames := make([]byte, 0, k*size)
		for i := range k {
			f, err := codec.Append(nil, size, 0, map[string]int{"i": i})
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, f...)
		}
		direct, writes := l.handed.direct, w.writes
		w.in = frames
		c.traffic()
		if got := l.handed.direct - direct; got != k {
			t.Errorf("goroutine %v: %d of %d echoes built directly", viaGoroutine, got, k)
		}
		for i, n := range queued {
			if n != 0 {
				t.Fatalf("goroutine %v: %d tasks queued after echo %d", viaGoroutine, n, i)
			}
		}
		if l.pending.Load() || cap(l.spareTasks) != 0 || cap(l.spareArena) != 0 {
			t.Errorf("goroutine %v: the loop's queue was used", viaGoroutine)
		}
		if !bytes.Equal(w.out, frames) || w.writes-writes != 1 {
			t.Errorf("goroutine %v: %d writes of %d bytes, want the %d frames read in one", viaGoroutine,
				w.writes-writes, len(w.out), k)
		}
		if c.queued.Load() != 0 || c.side.inline.Load() != 0 || l.handed.first.Load() != 0 {
			t.Errorf("goroutine %v: left queued %d, inline %d, record %#x", viaGoroutine,
				c.queued.Load(), c.side.inline.Load(), l.handed.first.Load())
		}
	}
}

// TestDirectKeepsOrder: a callback whose goroutine queues a send for the
// connection before the callback echoes: the echo must not overtake it, so
// it is queued behind it, and so are the echoes of the read's later
// frames (the loop's queue is not empty until the round drains it).
func TestDirectKeepsOrder(t *testing.T) {
	const size, k = 256, 4
	r := handler.NewRouter()
	r.On(0, func(hc handler.Conn, data []byte) error {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hc.Send(7, map[string]bool{"first": true}); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		return hc.SendRaw(0, data)
	})
	r.On(1, func(hc handler.Conn, data []byte) error { return hc.SendRaw(1, data) })
	c, w := directOnFake(t, size, r)
	var in, want []byte
	for i := range k {
		f0, _ := codec.Append(nil, size, 0, map[string]int{"i": i})
		f1, _ := codec.Append(nil, size, 1, map[string]int{"i": i})
		first, _ := codec.Append(nil, size, 7, map[string]bool{"first": true})
		in = append(append(in, f0...), f1...)
		want = append(append(append(want, first...), f0...), f1...)
	}
	direct := c.loop.handed.direct
	w.in = in
	c.traffic()
	if got := c.loop.handed.direct - direct; got != 0 {
		t.Errorf("%d echoes built directly behind a queued send, want 0", got)
	}
	if !bytes.Equal(w.out, want) {
		t.Errorf("wire got\n%q\nwant\n%q", w.out, want)
	}
	// The next read, with nothing queued, goes direct again.
	w.out = nil
	f1, _ := codec.Append(nil, size, 1, map[string]int{"i": k})
	w.in = f1
	c.traffic()
	if got := c.loop.handed.direct - direct; got != 1 || !bytes.Equal(w.out, f1) {
		t.Errorf("after the queue drained: %d built directly, wire got %q", got, w.out)
	}
}
