package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// asyncResult is what a CallAsync's done received, with the sum it decoded.
type asyncResult struct {
	sum int
	err error
}

// waitResults reads n results from ch, failing the test if they do not come.
func waitResults(t *testing.T, ch <-chan asyncResult, n int) []asyncResult {
	t.Helper()
	out := make([]asyncResult, 0, n)
	for range n {
		select {
		case r := <-ch:
			out = append(out, r)
		case <-time.After(testTimeout):
			t.Fatalf("%d of %d done callbacks ran", len(out), n)
		}
	}
	return out
}

// TestCallAsyncFromCallback has a server callback call its client back
// with CallAsync, which works where Call is refused (ErrCallOnLoop), in each
// mode. done runs where callbacks run: on the loop inline, where a Call
// from done is refused in turn, and on a worker with a pool, where it may
// block and a Call from done succeeds. The client calls the server
// asynchronously too.
func TestCallAsyncFromCallback(t *testing.T) {
	t.Parallel()
	for _, m := range callModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			results := make(chan asyncResult, 4)
			srvR := sumRouter()
			srvR.On(opTrigger, func(c handler.Conn, _ []byte) error {
				var r sumResp
				return c.CallAsync(context.Background(), opSum, sumReq{A: 20, B: 1}, &r, func(err error) {
					results <- asyncResult{r.Sum, err}
					// Where done runs: a blocking call is refused on the
					// loop and allowed on a worker.
					ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
					defer cancel()
					var again sumResp
					err = c.Call(ctx, opSum, sumReq{A: 1, B: 1}, &again)
					results <- asyncResult{again.Sum, err}
				})
			})
			srv, cl, id := callPair(t, m, srvR, sumRouter())

			if err := cl.Send(opTrigger, struct{}{}); err != nil {
				t.Fatal(err)
			}
			got := waitResults(t, results, 2)
			if got[0].err != nil || got[0].sum != 21 {
				t.Errorf("CallAsync from a callback: sum %d, %v", got[0].sum, got[0].err)
			}
			if m.workers() {
				if got[1].err != nil || got[1].sum != 2 {
					t.Errorf("Call from done on a worker: sum %d, %v", got[1].sum, got[1].err)
				}
			} else if !errors.Is(got[1].err, engine.ErrCallOnLoop) {
				t.Errorf("Call from done on the loop: %v, want ErrCallOnLoop", got[1].err)
			}

			// The client side, from a goroutine, and Server.Conn(id).CallAsync.
			var r1, r2 sumResp
			if err := cl.CallAsync(testContext(t), opSum, sumReq{A: 2, B: 3}, &r1, func(err error) {
				results <- asyncResult{r1.Sum, err}
			}); err != nil {
				t.Fatal(err)
			}
			sc, _ := srv.Conn(id)
			if err := sc.CallAsync(testContext(t), opSum, sumReq{A: 4, B: 5}, &r2, func(err error) {
				results <- asyncResult{r2.Sum, err}
			}); err != nil {
				t.Fatal(err)
			}
			sums := map[int]bool{}
			for _, r := range waitResults(t, results, 2) {
				if r.err != nil {
					t.Errorf("CallAsync: %v", r.err)
				}
				sums[r.sum] = true
			}
			if !sums[5] || !sums[9] {
				t.Errorf("sums %v, want 5 and 9", sums)
			}
			c, _ := srv.Conn(id)
			checkPending(t, "server conn", c)
			checkPending(t, "client", cl)
		})
	}
}

// TestCallAsyncErrors checks what CallAsync refuses at once (and then never
// runs done), and the failures done receives: a remote failure, a reply of
// the wrong type. A panic in done is recovered and the connection goes on.
func TestCallAsyncErrors(t *testing.T) {
	t.Parallel()
	srv, cl, _ := callPair(t, callModes[0], sumRouter(), handler.NewRouter())
	ctx := testContext(t)
	ran := make(chan error, 8)
	done := func(err error) { ran <- err }

	if err := cl.CallAsync(ctx, opSum, sumReq{}, nil, nil); err == nil {
		t.Error("nil done accepted")
	}
	if err := cl.CallAsync(ctx, -3, sumReq{}, nil, done); err == nil {
		t.Error("negative opcode accepted")
	}
	if err := cl.CallAsync(ctx, opSum, 42, nil, done); !errors.Is(err, codec.ErrNotObject) {
		t.Errorf("request that is not an object: %v, want codec.ErrNotObject", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := cl.CallAsync(canceled, opSum, sumReq{A: 1, B: 1}, nil, done); !errors.Is(err, context.Canceled) {
		t.Errorf("ended context: %v, want context.Canceled", err)
	}

	var missing handler.ArgumentMissing
	if err := cl.CallAsync(ctx, opSum, nil, nil, done); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; !errors.As(err, &missing) {
		t.Errorf("remote failure: %v, want ArgumentMissing", err)
	}
	var wrong struct {
		Sum string `json:"sum"`
	}
	if err := cl.CallAsync(ctx, opSum, sumReq{A: 1, B: 2}, &wrong, done); err != nil {
		t.Fatal(err)
	}
	var te *codec.TypeError
	if err := <-ran; !errors.As(err, &te) {
		t.Errorf("reply of the wrong type: %v, want *codec.TypeError", err)
	}
	if err := cl.CallAsync(ctx, opSum, sumReq{A: 1, B: 2}, nil, func(error) { panic("done panics") }); err != nil {
		t.Fatal(err)
	}
	var got sumResp
	if err := cl.Call(ctx, opSum, sumReq{A: 3, B: 4}, &got); err != nil || got.Sum != 7 {
		t.Fatalf("call after a panicking done: %v %v", got, err)
	}
	select {
	case err := <-ran:
		t.Errorf("done ran for a refused call: %v", err)
	default:
	}
	checkPending(t, "client", cl)

	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-cl.Done()
	if err := cl.CallAsync(ctx, opSum, sumReq{}, nil, done); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("closed client: %v, want ErrClosed", err)
	}
}

// TestCallAsyncDeadline: a peer that reads requests and never answers. done
// runs once per call with the context's error, the pending table empties,
// and replies that come late are ignored.
func TestCallAsyncDeadline(t *testing.T) {
	t.Parallel()
	addr, accept := rawServer(t, 256)
	cl := callDial(t, addr, handler.NewRouter())
	p := accept()
	const n = 20
	var calls atomic.Int64
	results := make(chan asyncResult, 2*n)
	ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
	defer cancel()
	for i := range n {
		if err := cl.CallAsync(ctx, opSum, sumReq{A: i, B: i}, nil, func(err error) {
			calls.Add(1)
			results <- asyncResult{err: err}
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		p.read() // every request is out
	}
	for _, r := range waitResults(t, results, n) {
		if !errors.Is(r.err, context.DeadlineExceeded) {
			t.Errorf("done: %v, want context.DeadlineExceeded", r.err)
		}
	}
	checkPending(t, "client", cl)
	for i := 1; i <= n; i++ {
		p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": 0}}`, i))
	}
	// A call after the late replies proves they were read and ignored.
	go func() {
		_, obj := p.read()
		var r struct{ ID uint64 }
		_ = codec.Unmarshal(obj, &r)
		p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": 42}}`, r.ID))
	}()
	var got sumResp
	if err := cl.Call(testContext(t), opSum, sumReq{}, &got); err != nil || got.Sum != 42 {
		t.Fatalf("call after late replies: %v %v", got, err)
	}
	if k := calls.Load(); k != n {
		t.Errorf("done ran %d times for %d calls", k, n)
	}
}

// TestCallAsyncConnectionClosed: the peer closes with calls in flight.
// Each done runs once with an error matching ErrClosed and net.ErrClosed,
// and all of them before the disconnect callback.
func TestCallAsyncConnectionClosed(t *testing.T) {
	t.Parallel()
	addr, accept := rawServer(t, 256)
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	gone := make(chan struct{})
	cl := callDial(t, addr, handler.NewRouter(), engine.WithOnDisconnect(func(handler.Conn, error) {
		record("disconnect")
		close(gone)
	}))
	p := accept()
	const n = 10
	results := make(chan asyncResult, n)
	for i := range n {
		if err := cl.CallAsync(testContext(t), opSum, sumReq{A: i}, nil, func(err error) {
			record("done")
			results <- asyncResult{err: err}
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		p.read()
	}
	_ = p.conn.Close()
	for _, r := range waitResults(t, results, n) {
		if !errors.Is(r.err, engine.ErrClosed) || !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("done: %v, want ErrClosed", r.err)
		}
	}
	select {
	case <-gone:
	case <-time.After(testTimeout):
		t.Fatal("no disconnect callback")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != n+1 || events[n] != "disconnect" {
		t.Errorf("events %v, want %d done then the disconnect", events, n)
	}
}

// TestCallAsyncManyInFlight keeps 10,000 asynchronous calls in flight on
// one connection from one goroutine: no goroutine per call, every reply to
// its own call. Not parallel, so that the goroutine count is this test's.
func TestCallAsyncManyInFlight(t *testing.T) {
	const n = 10000
	srv := startServer(t, sumRouter(), engine.WithMessageSize(256)) // 10,000 requests fit the 4 MiB queue
	cl := callDial(t, srv.Addr().String(), handler.NewRouter())
	ctx := testContext(t)
	before := runtime.NumGoroutine()
	var wrong, failed atomic.Int64
	var left sync.WaitGroup
	left.Add(n)
	resps := make([]sumResp, n)
	for i := range n {
		if err := cl.CallAsync(ctx, opSum, sumReq{A: i, B: 2 * i}, &resps[i], func(err error) {
			switch {
			case err != nil:
				failed.Add(1)
			case resps[i].Sum != 3*i:
				wrong.Add(1)
			}
			left.Done()
		}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if g := runtime.NumGoroutine(); g > before+20 {
		t.Errorf("%d goroutines with %d calls in flight, %d before", g, n, before)
	}
	left.Wait()
	if failed.Load() > 0 || wrong.Load() > 0 {
		t.Fatalf("%d calls failed, %d got another call's reply", failed.Load(), wrong.Load())
	}
	checkPending(t, "client", cl)
}

// TestCallAsyncQueueFull: with the client's loop held and its queue full,
// CallAsync fails at once with ErrOutboundFull instead of waiting, and the
// connection is left alone; the calls queued before complete once the loop
// is free.
func TestCallAsyncQueueFull(t *testing.T) {
	t.Parallel()
	srv := startServer(t, sumRouter())
	cl, release := dialHeld(t, srv)
	results := make(chan asyncResult, 200)
	queued, full := 0, 0
	for i := range 200 {
		err := cl.CallAsync(testContext(t), opSum, sumReq{A: i, B: 1}, nil, func(err error) { results <- asyncResult{err: err} })
		switch {
		case err == nil:
			queued++
		case errors.Is(err, engine.ErrOutboundFull):
			full++
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	release()
	if queued != 64 || full != 136 {
		t.Errorf("%d calls queued and %d refused, want 64 and 136 (64 KiB of 1024-byte frames)", queued, full)
	}
	for _, r := range waitResults(t, results, queued) {
		if r.err != nil {
			t.Errorf("queued call: %v", r.err)
		}
	}
	select {
	case <-cl.Done():
		t.Fatalf("a full queue closed the connection: %v", cl.Err())
	default:
	}
	checkPending(t, "client", cl)
}

// TestCallAsyncExactlyOnce races replies against cancellations and, in a
// second round, against the connection closing: 600 asynchronous calls per
// mode, a third cancelled before the call, a third at a random moment
// during it. done must run exactly once for each call that CallAsync
// accepted, never for one it refused, with the reply or the right error,
// and the pending table must end empty.
func TestCallAsyncExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, m := range callModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			srv, cl, id := callPair(t, m, sumRouter(), handler.NewRouter())
			const n = 600
			for _, closing := range []bool{false, true} {
				ran := make([]atomic.Int32, n)
				var accepted sync.WaitGroup
				var bad atomic.Int64
				var firstBad atomic.Value
				cancels := make([]context.CancelFunc, 0, n)
				for i := range n {
					ctx, cancel := context.WithCancel(testContext(t))
					cancels = append(cancels, cancel)
					switch i % 3 {
					case 0:
						cancel()
					case 1:
						time.AfterFunc(time.Duration(rand.IntN(2000))*time.Microsecond, cancel)
					}
					var got sumResp
					err := cl.CallAsync(ctx, opSum, sumReq{A: i, B: i}, &got, func(err error) {
						defer accepted.Done()
						ran[i].Add(1)
						switch {
						case err == nil && got.Sum == 2*i:
						case errors.Is(err, context.Canceled):
						case closing && errors.Is(err, engine.ErrClosed):
						default:
							bad.Add(1)
							firstBad.CompareAndSwap(nil, fmt.Sprintf("call %d: %v %v", i, got.Sum, err))
						}
					})
					if err == nil {
						accepted.Add(1)
					} else if !errors.Is(err, context.Canceled) && !(closing && errors.Is(err, engine.ErrClosed)) {
						t.Fatalf("call %d refused: %v", i, err)
					}
					if closing && i == n/2 {
						c, _ := srv.Conn(id)
						_ = c.Close()
					}
				}
				waited := make(chan struct{})
				go func() { accepted.Wait(); close(waited) }()
				select {
				case <-waited:
				case <-time.After(testTimeout):
					t.Fatal("some done callbacks never ran")
				}
				for _, cancel := range cancels {
					cancel()
				}
				time.Sleep(20 * time.Millisecond) // a second run would show up now
				for i := range ran {
					if k := ran[i].Load(); k > 1 {
						t.Fatalf("call %d: done ran %d times", i, k)
					}
				}
				if bad.Load() > 0 {
					t.Fatalf("%d calls ended wrong; first: %v", bad.Load(), firstBad.Load())
				}
				if !closing {
					checkPending(t, "client", cl)
				}
			}
		})
	}
}
