// Tests of calls that end without a reply: a cancelled context, a closed
// connection, and calls made from the event loop.

package engine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestCallCancelLeavesNothing abandons calls at random moments, some before
// their reply and some while it arrives, and checks that every Call returns
// its reply or ctx's error, and that the pending table is empty once they
// have returned. Goroutines are checked by goleak in TestMain.
func TestCallCancelLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, m := range callModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			srvR := sumRouter()
			_, cl, _ := callPair(t, m, srvR, handler.NewRouter())
			ctx := testContext(t)
			const n = 300
			var wg sync.WaitGroup
			var done, cancelled atomic.Int32
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cctx, cancel := context.WithCancel(ctx)
					defer cancel()
					if i%3 == 0 {
						cancel() // before the call
					} else if i%3 == 1 {
						go func() { // during it
							time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
							cancel()
						}()
					}
					var got sumResp
					err := cl.Call(cctx, opSum, sumReq{A: i, B: i}, &got)
					switch {
					case err == nil && got.Sum == 2*i:
						done.Add(1)
					case errors.Is(err, context.Canceled):
						cancelled.Add(1)
					default:
						errs <- fmt.Errorf("call %d: %v %v", i, got, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d replies, %d cancelled", done.Load(), cancelled.Load())
			checkPending(t, "client", cl)
		})
	}
	t.Run("blocked", func(t *testing.T) {
		t.Parallel()
		srvR := sumRouter()
		_, cl, _ := callPair(t, callModes[2], srvR, handler.NewRouter())
		b := newBlocker(t, srvR)
		ctx := testContext(t)
		cctx, cancel := context.WithCancel(ctx)
		const n = 100
		errs := make(chan error, n)
		for range n {
			go func() { errs <- cl.Call(cctx, opBlock, struct{}{}, nil) }()
		}
		b.wait(t)
		cancel()
		for range n {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Errorf("abandoned call: %v, want context.Canceled", err)
			}
		}
		checkPending(t, "client after cancel", cl)
		// The server answers the abandoned calls when released; the
		// replies find no call.
		b.free()
		var got sumResp
		if err := cl.Call(ctx, opSum, sumReq{A: 1, B: 2}, &got); err != nil || got.Sum != 3 {
			t.Errorf("call after the abandoned ones: %v %v", got, err)
		}
		checkPending(t, "client at the end", cl)
	})
}

// rawServer listens on loopback for one connection and speaks the protocol
// by hand, announcing size first.
func rawServer(t *testing.T, size int) (addr string, accept func() *rawPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() *rawPeer {
		t.Helper()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(testTimeout))
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		p := &rawPeer{t: t, conn: c, r: bufio.NewReader(c), size: size}
		p.write(fmt.Sprintf(`-2{"message_size": %d}`, size))
		return p
	}
}

// readText reads one frame and returns it without its padding.
func (p *rawPeer) readText() string {
	p.t.Helper()
	op, obj := p.read()
	return fmt.Sprintf("%d%s", op, obj)
}

// TestCallConnectionClosed checks that a call whose connection closes
// returns at once with an error matching engine.ErrClosed and net.ErrClosed
// (and saying why): when the peer closes while the call waits, when the
// remote handler closes the connection instead of answering, and when the
// caller closes its own side.
func TestCallConnectionClosed(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, what string, err error, start time.Time, why error) {
		t.Helper()
		if !errors.Is(err, engine.ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: %v, want engine.ErrClosed and net.ErrClosed", what, err)
		}
		if why != nil && !errors.Is(err, why) {
			t.Errorf("%s: %v does not say why (%v)", what, err, why)
		}
		if d := time.Since(start); d > testTimeout/2 {
			t.Errorf("%s: returned after %v", what, d)
		}
	}

	t.Run("server closes while the call waits", func(t *testing.T) {
		t.Parallel()
		addr, accept := rawServer(t, 256)
		cl := callDial(t, addr, handler.NewRouter())
		p := accept()
		ctx := testContext(t)
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- cl.Call(ctx, opSum, sumReq{A: 1, B: 2}, nil) }()
		if got := p.readText(); !strings.HasPrefix(got, `-3{"id":`) {
			t.Fatalf("server read %q, want a request", got)
		}
		p.conn.Close()
		check(t, "call", <-errc, start, io.EOF)
		checkPending(t, "client", cl)
	})

	t.Run("remote handler closes instead of answering", func(t *testing.T) {
		t.Parallel()
		srvR := handler.NewRouter()
		srvR.OnCall(20, func(c handler.Conn, _ []byte) (any, error) {
			_ = c.Close()
			return map[string]int{"never": 1}, nil
		})
		_, cl, _ := callPair(t, callModes[0], srvR, handler.NewRouter())
		start := time.Now()
		check(t, "call", cl.Call(testContext(t), 20, struct{}{}, nil), start, io.EOF)
	})

	t.Run("client closes itself", func(t *testing.T) {
		t.Parallel()
		srvR := sumRouter()
		_, cl, _ := callPair(t, callModes[2], srvR, handler.NewRouter())
		b := newBlocker(t, srvR)
		ctx := testContext(t)
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- cl.Call(ctx, opBlock, struct{}{}, nil) }()
		b.wait(t)
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
		check(t, "call", <-errc, start, engine.ErrLocalClose)
		checkPending(t, "client", cl)
		start = time.Now()
		check(t, "call after close", cl.Call(ctx, opSum, sumReq{}, nil), start, nil)
	})

	t.Run("client closes while the server calls", func(t *testing.T) {
		t.Parallel()
		cliR := handler.NewRouter()
		srv, cl, id := callPair(t, callModes[2], sumRouter(), cliR)
		b := newBlocker(t, cliR)
		ctx := testContext(t)
		c, ok := srv.Conn(id)
		if !ok {
			t.Fatal("no connection")
		}
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- srv.Call(ctx, id, opBlock, struct{}{}, nil) }()
		b.wait(t)
		_ = cl.Close()
		check(t, "Server.Call", <-errc, start, io.EOF)
		checkPending(t, "server conn", c)
		if err := srv.Call(ctx, id, opSum, sumReq{}, nil); !errors.Is(err, engine.ErrUnknownConn) && !errors.Is(err, engine.ErrClosed) {
			t.Errorf("Server.Call to the closed id: %v", err)
		}
	})
}

// TestCallOnLoop checks that a Call from a callback running on the event
// loop returns ErrCallOnLoop at once, on the server and on the client,
// while the same connection called from a goroutine works.
func TestCallOnLoop(t *testing.T) {
	t.Parallel()
	for _, m := range callModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			errs := make(chan error, 8)
			onLoop := func(c handler.Conn) {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				err := c.Call(ctx, opSum, sumReq{A: 1, B: 1}, nil)
				if d := time.Since(start); d > time.Second {
					err = fmt.Errorf("took %v: %w", d, err)
				}
				errs <- err
			}
			srvR := sumRouter()
			srvR.On(opTrigger, func(c handler.Conn, _ []byte) error {
				onLoop(c)
				// And answer the trigger so the client's callback runs.
				return c.Send(opTrigger, struct{}{})
			})
			srvR.OnCall(21, func(c handler.Conn, _ []byte) (any, error) {
				onLoop(c)
				return nil, nil
			})
			cliR := sumRouter()
			cliR.On(opTrigger, func(c handler.Conn, _ []byte) error {
				onLoop(c)
				return nil
			})
			ids := make(chan uint64, 1)
			sopts := []engine.ServerOption{engine.WithOnConnect(func(c handler.Conn) {
				onLoop(c)
				ids <- c.ID()
			})}
			var copts []engine.ClientOption
			for _, o := range m.opts {
				sopts = append(sopts, o)
				copts = append(copts, o)
			}
			srv := startServer(t, srvR, sopts...)
			cl := callDial(t, srv.Addr().String(), cliR, copts...)
			ctx := testContext(t)
			var id uint64
			select {
			case id = <-ids:
			case <-ctx.Done():
				t.Fatal("no connection")
			}
			if err := cl.Send(opTrigger, struct{}{}); err != nil {
				t.Fatal(err)
			}
			if err := cl.Call(ctx, 21, struct{}{}, nil); err != nil {
				t.Errorf("call whose handler tried to call back: %v", err)
			}
			for _, where := range []string{"server connect", "server frame", "server call handler", "client frame"} {
				select {
				case err := <-errs:
					if !errors.Is(err, engine.ErrCallOnLoop) {
						t.Errorf("%s: %v, want ErrCallOnLoop", where, err)
					}
				case <-ctx.Done():
					t.Fatalf("%s: no result", where)
				}
			}
			// From a goroutine, the same connections call fine.
			c, _ := srv.Conn(id)
			var got sumResp
			if err := c.Call(ctx, opSum, sumReq{A: 3, B: 4}, &got); err != nil || got.Sum != 7 {
				t.Errorf("goroutine call: %v %v", got, err)
			}
		})
	}
}

// TestCallFromGoroutineWhileLoopBusy calls, from a goroutine, through the
// connection an inline callback received, while the same loop keeps running
// inline callbacks for a flood of one-way frames from a second client: no
// call may mistake the goroutine for the loop. The flood is paced by a call
// after each burst, so that it never outruns the server.
func TestCallFromGoroutineWhileLoopBusy(t *testing.T) {
	t.Parallel()
	const calls = 300
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	errs := make(chan error, calls)
	finished := make(chan struct{})
	srvR := sumRouter()
	srvR.On(opFlood, func(handler.Conn, []byte) error { return nil })
	srvR.On(opTrigger, func(c handler.Conn, _ []byte) error {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(finished)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			for i := range calls {
				var got sumResp
				if err := c.Call(ctx, opSum, sumReq{A: i, B: 1}, &got); err != nil || got.Sum != i+1 {
					errs <- fmt.Errorf("call %d: %v %v", i, got, err)
				}
			}
		}()
		return nil
	})
	srv, cl, _ := callPair(t, callModes[0], srvR, sumRouter())
	flooder := callDial(t, srv.Addr().String(), handler.NewRouter())
	ctx := testContext(t)
	if err := cl.Send(opTrigger, struct{}{}); err != nil {
		t.Fatal(err)
	}
	bursts := 0
flood:
	for ; ; bursts++ {
		select {
		case <-finished:
			break flood
		default:
		}
		for range 64 {
			if err := flooder.Send(opFlood, struct{}{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := flooder.Call(ctx, opSum, sumReq{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d bursts of 64 frames during the calls", bursts)
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Errorf("%d of %d calls failed", n, calls)
	}
}
