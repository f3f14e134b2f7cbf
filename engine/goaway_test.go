package engine_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
)

// TestGoAway is a restart that keeps its clients: server A hands its
// listening socket to server B and goes away (-8) while a reconnecting
// client sends a numbered stream of frames and calls. The test fixes the
// points in time: the first quarter of the stream goes out before A goes
// away, the second while the client moves (from the moment its -8 arrives),
// the second half once the client has opened its connection to B. The
// client moves to B before it lets A go: every frame arrives exactly once,
// A's a prefix of the stream that holds the first quarter, B's the rest
// that holds the second half; every frame the servers pushed back on the
// connection it came on reaches the client, the old connection's too;
// every call is answered, those of the first quarter by A and those of the
// second half by B; and A's GoAway returns once its last connection has
// closed.
func TestGoAway(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	type note struct {
		Seq int `json:"seq"`
	}
	var mu sync.Mutex // guards got and pushed
	got := map[string][]int{}
	arrived := make(chan struct{}, 1) // a frame reached a server, or came back
	signal := func() {
		select {
		case arrived <- struct{}{}:
		default:
		}
	}
	newServer := func(name string) *engine.Server {
		r := handler.NewRouter()
		handler.Handle(r, 1, func(c handler.Conn, n note) error {
			mu.Lock()
			got[name] = append(got[name], n.Seq)
			mu.Unlock()
			signal()
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
		signal()
		return nil
	})
	goneAway := make(chan struct{}, 1) // the client read A's -8
	opened := make(chan struct{}, 8)   // the client opened a connection
	cl, err := engine.Dial(ctx, ln.Addr().String(), cr,
		engine.WithReconnect(5*time.Millisecond, 50*time.Millisecond, nil),
		engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
			if op == codec.OpGoAway {
				select {
				case goneAway <- struct{}{}:
				default:
				}
			}
		}),
		engine.WithOnConnect(func(handler.Conn) { opened <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	testkit.Recv(ctx, t, opened, "the client's connection to A")

	const n = 2000
	answered := map[string][]int{} // the calls each server answered, by position in the stream
	wentAway := make(chan error, 1)
	for i := range n {
		switch i {
		case n / 4: // A goes away; the client moves while it sends
			if err := b.StartOn(ctx, lnB); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			go func() { wentAway <- a.GoAway(ctx, "restart") }()
			testkit.Recv(ctx, t, goneAway, "A's -8 at the client")
		case n / 2: // from here on the client sends on its connection to B
			testkit.Recv(ctx, t, opened, "the client's connection to B")
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
			answered[who.Server] = append(answered[who.Server], i)
		}
	}
	if err := testkit.Recv(ctx, t, wentAway, "A's GoAway to return"); err != nil {
		t.Fatalf("GoAway: %v", err)
	}
	if c := a.Stats().Conns; c != 0 {
		t.Errorf("A's GoAway returned with %d connections", c)
	}
	testkit.WaitEvents(ctx, t, arrived, "every frame to arrive and come back", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got["A"])+len(got["B"]) >= n && len(pushed) >= n
	})
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
	if a := len(got["A"]); a < n/4 || a > n/2 {
		t.Errorf("A got frames 0 to %d, want the first quarter at least and the second half on B", a-1)
	}
	back := make([]bool, n)
	for _, seq := range pushed {
		if back[seq] {
			t.Fatalf("frame %d came back twice", seq)
		}
		back[seq] = true
	}
	for _, i := range answered["A"] {
		if i >= n/2 {
			t.Errorf("A answered the call at %d, after the client opened its connection to B", i)
		}
	}
	for _, i := range answered["B"] {
		if i < n/4 {
			t.Errorf("B answered the call at %d, before A went away", i)
		}
	}
	if len(answered["A"])+len(answered["B"]) != n/50 {
		t.Errorf("calls answered: %v, want %d", answered, n/50)
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
	return ln, dupListener(t, ln)
}

// dupListener returns a second listener on ln's socket, for a successor.
func dupListener(t *testing.T, ln net.Listener) net.Listener {
	t.Helper()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dup, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return dup
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
