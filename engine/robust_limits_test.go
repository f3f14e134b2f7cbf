// Tests of the per-connection limits on what a peer sends and how long it
// may stay silent: the rate limit, frames per wake, the idle timeout and
// the client's heartbeat.

package engine_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestRateLimit uses WithRateLimit(50, 10, 5): 50 frames a second with
// bursts of 10; a frame over the limit is answered with a RateLimited
// failure and not dispatched; the 5th such frame in a row closes the
// connection with ErrRateLimited.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ev := newConnEvents()
	r := echoRouter()
	r.OnCall(8, func(handler.Conn, []byte) (any, error) { return nil, nil })
	srv := startServer(t, r, append(ev.options(),
		engine.WithMessageSize(128), engine.WithRateLimit(50, 10, 5))...)
	addr := srv.Addr().String()

	t.Run("under the limit", func(t *testing.T) {
		t.Parallel()
		p := dialRaw(t, addr)
		p.greet(128)
		echo := func(from, to int) {
			t.Helper()
			for i := from; i < to; i++ {
				op, obj := p.read()
				if want := fmt.Sprintf(`{"i":%d}`, i); op != 1 || string(obj) != want {
					t.Fatalf("frame %d: got %d %s", i, op, obj)
				}
			}
		}
		// A full burst, then, once the server has taken it (its echoes are
		// back), 20 frames at 40 a second: each comes at least 25 ms after
		// the one before, however late the server reads them, and the
		// bucket has refilled by 1.25 frames meanwhile. Had the pacing
		// started before the server took the burst, a frame could meet an
		// empty bucket that the burst emptied later than the client knew.
		for i := range 10 {
			p.write(fmt.Sprintf(`1{"i":%d}`, i))
		}
		echo(0, 10)
		for i := 10; i < 30; i++ {
			time.Sleep(25 * time.Millisecond) // the rate under test
			p.write(fmt.Sprintf(`1{"i":%d}`, i))
		}
		echo(10, 30)
	})

	t.Run("flood", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t) // made once the subtest runs: it may wait for a slot
		p := dialRaw(t, addr)
		p.greet(128)
		id := ev.idOf(ctx, t, p)
		var burst []byte
		for i := range 30 {
			f, err := codec.Append(nil, 128, 1, map[string]int{"i": i})
			if err != nil {
				t.Fatal(err)
			}
			burst = append(burst, f...)
		}
		if _, err := p.conn.Write(burst); err != nil {
			t.Fatal(err)
		}
		echoes, failures := 0, 0
		for f := range p.readFrames() {
			if f.err != nil {
				if !errors.Is(f.err, io.EOF) {
					t.Fatalf("want EOF after the failures, got %v", f.err)
				}
				break
			}
			switch {
			case f.op == 1:
				echoes++
			case f.op == codec.OpFailure && strings.Contains(string(f.obj), `"reason":"RateLimited"`):
				failures++
			default:
				t.Fatalf("unexpected frame %d %s", f.op, f.obj)
			}
		}
		t.Logf("30 frames at once: %d echoed, %d RateLimited failures, then closed", echoes, failures)
		// The burst passes; a token may come back while the burst is being
		// read (one per 20 ms), which only adds echoes and resets the count.
		if echoes < 10 || failures < 4 || echoes+failures >= 30 {
			t.Fatalf("%d echoes and %d failures", echoes, failures)
		}
		if r := ev.reasonFor(ctx, t, id); !errors.Is(r, engine.ErrRateLimited) {
			t.Fatalf("disconnect reason %v, want ErrRateLimited", r)
		}
	})

	t.Run("calls", func(t *testing.T) {
		// 14 calls at once: 10 pass, the rest (3 or 4) fail with the
		// RateLimited failure, which carries the call's id.
		t.Parallel()
		ctx := testContext(t) // made once the subtest runs: it may wait for a slot
		cl, err := engine.Dial(ctx, addr, handler.NewRouter())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		<-cl.Ready()
		const n = 14
		errs := make(chan error, n)
		for range n {
			go func() { errs <- cl.Call(ctx, 8, map[string]int{}, nil) }()
		}
		ok, limited := 0, 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				ok++
			case handler.ReasonOf(err) == engine.ReasonRateLimited:
				limited++
			default:
				t.Fatalf("call: %v", err)
			}
		}
		t.Logf("%d calls at once: %d answered, %d refused", n, ok, limited)
		if ok < 10 || limited == 0 {
			t.Fatalf("%d answered, %d refused", ok, limited)
		}
	})

	t.Run("client side", func(t *testing.T) {
		// The option applies to a client too: a server that sends it 30
		// frames at once gets RateLimited failures back, then the client
		// closes with ErrRateLimited.
		t.Parallel()
		ctx := testContext(t) // made once the subtest runs: it may wait for a slot
		failures := make(chan string, 32)
		fr := handler.NewRouter()
		handler.Handle(fr, codec.OpFailure, func(_ handler.Conn, f *handler.Error) error { failures <- f.Reason; return nil })
		flooder := startServer(t, fr, engine.WithMessageSize(128),
			engine.WithOnConnect(func(c handler.Conn) {
				for i := range 30 {
					_ = c.Send(1, map[string]int{"i": i})
				}
			}))
		cr := handler.NewRouter()
		cr.On(1, func(handler.Conn, []byte) error { return nil })
		cl, err := engine.Dial(ctx, flooder.Addr().String(), cr, engine.WithRateLimit(50, 10, 5))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("the flooded client is still open")
		}
		if !errors.Is(cl.Err(), engine.ErrRateLimited) {
			t.Fatalf("client closed with %v, want ErrRateLimited", cl.Err())
		}
		select {
		case r := <-failures:
			if r != engine.ReasonRateLimited {
				t.Fatalf("server got failure %q", r)
			}
		case <-ctx.Done():
			t.Fatal("the server got no failure")
		}
	})
}

// TestMaxFramesPerWake uses WithMaxFramesPerWake(8): one peer writes 5000
// frames in one burst to a handler that costs 50µs a frame (a quarter of a
// second in all, on one loop); another peer on the same loop completes its
// round trips while the burst is still being handled, and every frame of
// the burst is handled, in order.
func TestMaxFramesPerWake(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	r := handler.NewRouter()
	r.On(3, func(c handler.Conn, data []byte) error {
		for start := time.Now(); time.Since(start) < 50*time.Microsecond; {
		}
		return c.SendRaw(3, data)
	})
	r.On(4, func(c handler.Conn, data []byte) error { return c.SendRaw(4, data) })
	srv := startServer(t, r, engine.WithMaxFramesPerWake(8))
	const size, n = codec.DefaultMessageSize, 5000

	busy := dialRaw(t, srv.Addr().String())
	busy.greet(size)
	other := dialRaw(t, srv.Addr().String())
	other.greet(size)

	var handled atomic.Int64 // echoes the busy peer got back, checked in order
	started := make(chan struct{})
	busyDone := make(chan error, 1)
	go func() {
		for f := range busy.readFrames() {
			var m struct{ I int64 }
			if f.err != nil || f.op != 3 || codec.Unmarshal(f.obj, &m) != nil || m.I != handled.Load() {
				busyDone <- fmt.Errorf("after %d echoes: %d %.40s %v", handled.Load(), f.op, f.obj, f.err)
				return
			}
			if handled.Add(1) == 1 {
				close(started)
			}
			if handled.Load() == n {
				busyDone <- nil
				return
			}
		}
	}()
	var burst []byte
	for i := range n {
		f, err := codec.Append(nil, size, 3, map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, f...)
	}
	wrote := make(chan error, 1)
	go func() { _, err := busy.conn.Write(burst); wrote <- err }()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the burst is not being handled")
	}

	var slowest time.Duration
	const trips = 10
	for i := range trips {
		start := time.Now()
		other.write(fmt.Sprintf(`4{"trip":%d}`, i))
		if op, obj := other.read(); op != 4 || string(obj) != fmt.Sprintf(`{"trip":%d}`, i) {
			t.Fatalf("round trip %d: got %d %s", i, op, obj)
		}
		slowest = max(slowest, time.Since(start))
	}
	during := handled.Load()
	t.Logf("%d round trips done, slowest %v, with %d of %d burst frames handled", trips, slowest, during, n)
	if during == n {
		t.Error("the round trips waited for the whole burst")
	}
	select {
	case err := <-busyDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("burst: %d of %d frames handled", handled.Load(), n)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestIdleTimeout uses WithIdleTimeout(1s), a timeout that a loaded
// machine's scheduling delays stay well within: a silent peer is closed
// with ErrIdle, not before the timeout; a peer that sends only pings (-6,
// docs/PROTOCOL.md) stays open past 3x the timeout and gets each ping's
// object back in a pong (-7).
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const idle = time.Second
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(128), engine.WithIdleTimeout(idle))...)
	addr := srv.Addr().String()

	dialed := time.Now() // the server's idle clock starts after this
	silent := dialRaw(t, addr)
	silent.greet(128)
	silentID := ev.idOf(ctx, t, silent)
	pinger := dialRaw(t, addr)
	pinger.greet(128)
	pingerID := ev.idOf(ctx, t, pinger)

	start := time.Now()
	for i := 0; time.Since(start) < 3*idle+idle/2; i++ {
		time.Sleep(idle / 4) // the ping interval
		ping := fmt.Sprintf(`{"t":%d}`, i)
		pinger.write("-6" + ping)
		if op, obj := pinger.read(); op != codec.OpPong || string(obj) != ping {
			t.Fatalf("ping %d: got %d %s", i, op, obj)
		}
	}
	if _, ok := srv.Conn(pingerID); !ok {
		t.Fatal("the peer sending pings was closed")
	}

	silent.expectEOF()
	e := ev.eventFor(ctx, t, silentID)
	if !errors.Is(e.reason, engine.ErrIdle) {
		t.Fatalf("silent peer: disconnect reason %v, want ErrIdle", e.reason)
	}
	// The sweep runs every idle/4, so the close comes at 1x to 1.25x plus
	// the loop's delay; how late depends on the machine's load, so only
	// "not before the timeout" is asserted (and the pinger, which outlived
	// 3.5 timeouts, shows that traffic keeps a connection open).
	after := e.at.Sub(dialed)
	t.Logf("silent peer closed %v after it connected", after)
	if after < idle {
		t.Fatalf("silent peer closed after %v, before the idle timeout %v", after, idle)
	}
}

// TestClientHeartbeat uses WithHeartbeat(100ms, 1s) on the client (a
// timeout that a loaded machine's scheduling delays stay well within).
// Against our server, which answers pings, the client stays connected
// until it has had pongs for three timeouts' worth of intervals.
// Against a server that sends the -2 frame and then nothing, never
// reading, the client closes with ErrIdle, not before the timeout has
// passed since that frame (how much later depends on the machine's load:
// only the test's context bounds it).
func TestClientHeartbeat(t *testing.T) {
	t.Parallel()
	const interval, timeout = 100 * time.Millisecond, time.Second

	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := startServer(t, echoRouter(), engine.WithMessageSize(128))
		pongs := make(chan struct{}, 64)
		cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(),
			engine.WithHeartbeat(interval, timeout),
			engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
				if op == codec.OpPong {
					select {
					case pongs <- struct{}{}:
					default: // the test has all it reads
					}
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		// The pongs of three timeouts: the heartbeat must hold that long.
		for n := range int(3 * timeout / interval) {
			select {
			case <-pongs:
			case <-cl.Done():
				t.Fatalf("client closed after %d pongs: %v", n, cl.Err())
			case <-ctx.Done():
				t.Fatalf("%d pongs, want %d", n, 3*timeout/interval)
			}
		}
	})

	t.Run("dead server", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		var sent time.Time // before the -2 frame, the last the client receives
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			f, _ := codec.AppendMessageSize(nil, 128, 128)
			sent = time.Now()
			_, _ = nc.Write(f)
			accepted <- nc // held open, never read, until the test ends
		}()
		cl, err := engine.Dial(ctx, ln.Addr().String(), handler.NewRouter(), engine.WithHeartbeat(interval, timeout))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		nc, ok := <-accepted
		if !ok {
			t.Fatal("accept failed")
		}
		defer nc.Close()
		select {
		case <-cl.Ready():
		case <-ctx.Done():
			t.Fatal("timed out waiting for the -2 frame")
		}
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("the client did not detect the dead server")
		}
		after := time.Since(sent)
		t.Logf("client closed %v after the last frame", after)
		if !errors.Is(cl.Err(), engine.ErrIdle) {
			t.Fatalf("client closed with %v, want ErrIdle", cl.Err())
		}
		if after < timeout {
			t.Fatalf("closed %v after the last frame, before the timeout %v", after, timeout)
		}
	})
}
