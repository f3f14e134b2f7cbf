package engine_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestGoAway is a restart that keeps its clients: server A hands its
// listening socket to server B and goes away (-8) while a reconnecting
// client sends a numbered stream of frames and calls. The client moves to B
// before it lets A go: every frame arrives exactly once, A's a prefix of
// the stream and B's the rest; every frame the servers pushed back on the
// connection it came on reaches the client, the old connection's too;
// every call is answered, and A's GoAway returns once its last connection
// has closed.
func TestGoAway(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	type note struct {
		Seq int `json:"seq"`
	}
	var mu sync.Mutex
	got := map[string][]int{}
	newServer := func(name string) *engine.Server {
		r := handler.NewRouter()
		handler.Handle(r, 1, func(c handler.Conn, n note) error {
			mu.Lock()
			got[name] = append(got[name], n.Seq)
			mu.Unlock()
			return c.Send(3, n) // pushed back on the connection it came on
		})
		handler.HandleCall(r, 2, func(handler.Conn, struct{}) (map[string]string, error) {
			return map[string]string{"server": name}, nil
		})
		srv, err := engine.NewServer(r)
		if err != nil {
			t.Fatal(err)
		}
		return srv
	}
	ln, lnB := sharedListener(t) // B takes the socket over
	a, b := newServer("A"), newServer("B")
	if err := a.StartOn(ctx, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })

	cr := handler.NewRouter()
	var pushed []int
	handler.Handle(cr, 3, func(_ handler.Conn, n note) error {
		mu.Lock()
		pushed = append(pushed, n.Seq)
		mu.Unlock()
		return nil
	})
	cl, err := engine.Dial(ctx, ln.Addr().String(), cr,
		engine.WithReconnect(5*time.Millisecond, 50*time.Millisecond, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	const n = 2000
	answered := map[string]int{}
	for i := range n {
		if i == n/4 {
			if err := b.StartOn(ctx, lnB); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			go func() {
				if err := a.GoAway(ctx, "restart"); err != nil {
					t.Errorf("GoAway: %v", err)
				}
			}()
		}
		if err := cl.Send(1, note{Seq: i}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%50 == 0 {
			var who struct {
				Server string `json:"server"`
			}
			if err := cl.Call(ctx, 2, struct{}{}, &who); err != nil {
				t.Fatalf("call at %d: %v", i, err)
			}
			answered[who.Server]++
		}
	}
	for {
		mu.Lock()
		total := len(got["A"]) + len(got["B"])
		back := len(pushed)
		mu.Unlock()
		if total >= n && back >= n {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d frames arrived, %d came back", total, n, back)
		case <-time.After(5 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	seen := make([]bool, n)
	for _, seq := range append(append([]int(nil), got["A"]...), got["B"]...) {
		if seen[seq] {
			t.Fatalf("frame %d arrived twice", seq)
		}
		seen[seq] = true
	}
	for i, s := range got["A"] {
		if s != i {
			t.Fatalf("A's frames are not the stream's prefix: %d at %d", s, i)
		}
	}
	for i, s := range got["B"] {
		if s != len(got["A"])+i {
			t.Fatalf("B's frames do not follow A's: %d at %d", s, i)
		}
	}
	back := make([]bool, n)
	for _, seq := range pushed {
		if back[seq] {
			t.Fatalf("frame %d came back twice", seq)
		}
		back[seq] = true
	}
	if len(got["B"]) == 0 || answered["B"] == 0 {
		t.Fatalf("the client never moved to B: A got %d frames, B %d; calls %v", len(got["A"]), len(got["B"]), answered)
	}
	if a.Stats().Conns != 0 {
		t.Errorf("A still has %d connections", a.Stats().Conns)
	}
}

// TestGoAwayCallsAcrossTheMove has 16 goroutines call without pause while
// the server goes away and the client moves to its successor: no call may
// fail. A call that took the old connection just as the client let it go
// used to be written after the client's -8 and fail with ErrClosed; the
// retired connection now refuses it before anything is sent, and the
// client makes it on the new one.
func TestGoAwayCallsAcrossTheMove(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ln, lnB := sharedListener(t)
	a, b := whoServer(t, "A"), whoServer(t, "B")
	if err := a.StartOn(ctx, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	cl, err := engine.Dial(ctx, ln.Addr().String(), handler.NewRouter(),
		engine.WithReconnect(5*time.Millisecond, 50*time.Millisecond, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	<-cl.Ready()

	var onB atomic.Int64
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Until every caller has had 50 answers from B, bounded by ctx.
			for fromB := 0; fromB < 50; {
				var w struct {
					Server string `json:"server"`
				}
				if err := cl.Call(ctx, 2, struct{}{}, &w); err != nil {
					errs <- err
					return
				}
				if w.Server == "B" {
					fromB++
					onB.Add(1)
				}
			}
		}()
	}
	if err := b.StartOn(ctx, lnB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := a.GoAway(ctx, "restart"); err != nil {
		t.Fatalf("GoAway: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a call failed across the move: %v", err)
	}
	if onB.Load() != 16*50 {
		t.Fatalf("%d calls answered by B, want %d", onB.Load(), 16*50)
	}
}

// sharedListener returns a listener on a free loopback port and a second
// listener on the same socket: a successor takes it over as one does
// across a restart.
func sharedListener(t *testing.T) (net.Listener, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dup, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return ln, dup
}

// whoServer returns a server, not started, that answers a call on opcode
// 2 with {"server": name}.
func whoServer(t *testing.T, name string) *engine.Server {
	t.Helper()
	r := handler.NewRouter()
	handler.HandleCall(r, 2, func(handler.Conn, struct{}) (map[string]string, error) {
		return map[string]string{"server": name}, nil
	})
	srv, err := engine.NewServer(r)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}
