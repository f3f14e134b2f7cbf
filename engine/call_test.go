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

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Opcodes of the call tests (issue 6, docs/PROTOCOL.md §5).
const (
	opSum     codec.Opcode = 1  // call: {"a","b"} -> {"sum"}
	opFail    codec.Opcode = 2  // call: fails as its request says
	opBlock   codec.Opcode = 3  // call: waits for the test to release it (worker pool only)
	opTrigger codec.Opcode = 10 // one-way: makes the receiver call back
	opFlood   codec.Opcode = 12 // one-way: ignored
)

type sumReq struct {
	A int `json:"a" simplerpc:"required"`
	B int `json:"b" simplerpc:"required"`
}

type sumResp struct {
	Sum int `json:"sum"`
}

func sum(_ handler.Conn, r sumReq) (sumResp, error) { return sumResp{Sum: r.A + r.B}, nil }

// callMode is one row of the matrix every round-trip test runs in: how
// both sides run their callbacks.
type callMode struct {
	name string
	opts []engine.Option
}

var callModes = []callMode{
	{"inline", nil},
	{"multicore", []engine.Option{engine.WithEventLoops(2)}},
	{"workers", []engine.Option{engine.WithWorkerPool(4, 1024)}},
}

func (m callMode) workers() bool { return m.name == "workers" }

// callPair starts a server with srvR and dials it with a client using cliR,
// both in mode m. It returns the server, the client and the client's net id
// on the server.
func callPair(t *testing.T, m callMode, srvR, cliR *handler.Router) (*engine.Server, *engine.Client, uint64) {
	t.Helper()
	ids := make(chan uint64, 1)
	sopts := []engine.ServerOption{engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() })}
	var copts []engine.ClientOption
	for _, o := range m.opts {
		sopts = append(sopts, o)
		copts = append(copts, o)
	}
	srv := startServer(t, srvR, sopts...)
	cl := callDial(t, srv.Addr().String(), cliR, copts...)
	select {
	case id := <-ids:
		return srv, cl, id
	case <-time.After(testTimeout):
		t.Fatal("no connection on the server")
		return nil, nil, 0
	}
}

// callDial dials addr and closes the client, waiting for it, when the test
// ends.
func callDial(t *testing.T, addr string, r *handler.Router, opts ...engine.ClientOption) *engine.Client {
	t.Helper()
	// Without waiting for the size: the tests' scripted peers answer only
	// once Dial has returned.
	cl, err := engine.Dial(testContext(t), addr, r, append([]engine.ClientOption{engine.WithDialNoWait()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cl.Close()
		select {
		case <-cl.Done():
		case <-time.After(testTimeout):
			t.Error("client did not close")
		}
	})
	return cl
}

// sumRouter answers opSum.
func sumRouter() *handler.Router {
	r := handler.NewRouter()
	handler.HandleCall(r, opSum, sum)
	return r
}

// blocker is a call handler that holds the worker running it until the test
// releases it, and says when it starts.
type blocker struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// newBlocker registers opBlock on r. The handler is released when the test
// ends at the latest: register it after startServer so that its cleanup
// runs before the server's.
func newBlocker(t *testing.T, r *handler.Router) *blocker {
	b := &blocker{entered: make(chan struct{}, 1024), release: make(chan struct{})}
	handler.HandleCall(r, opBlock, func(handler.Conn, struct{}) (struct{}, error) {
		b.entered <- struct{}{}
		select {
		case <-b.release:
		case <-time.After(testTimeout):
		}
		return struct{}{}, nil
	})
	t.Cleanup(b.free)
	return b
}

func (b *blocker) free() { b.once.Do(func() { close(b.release) }) }

// wait blocks until the handler has started once more.
func (b *blocker) wait(t *testing.T) {
	t.Helper()
	select {
	case <-b.entered:
	case <-time.After(testTimeout):
		t.Fatal("call handler did not start")
	}
}

func checkPending(t *testing.T, what string, c handler.Conn) {
	t.Helper()
	if n := engine.PendingCalls(c); n != 0 {
		t.Errorf("%s: %d calls left in the pending table, want 0", what, n)
	}
}

// TestCallClientToServer checks Client.Call against a typed call handler
// that answers by returning a value, in every mode.
func TestCallClientToServer(t *testing.T) {
	t.Parallel()
	for _, m := range callModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			r := sumRouter()
			r.OnCall(5, func(handler.Conn, []byte) (any, error) { return nil, nil })
			_, cl, _ := callPair(t, m, r, handler.NewRouter())
			ctx := testContext(t)
			for i := range 3 {
				var got sumResp
				if err := cl.Call(ctx, opSum, sumReq{A: i, B: 40}, &got); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if got.Sum != i+40 {
					t.Errorf("call %d: sum %d, want %d", i, got.Sum, i+40)
				}
			}
			// A map request, and no place for the reply.
			if err := cl.Call(ctx, opSum, map[string]int{"a": 1, "b": 2}, nil); err != nil {
				t.Errorf("call with nil resp: %v", err)
			}
			// A handler that returns nil replies {}.
			var empty map[string]any
			if err := cl.Call(ctx, 5, struct{}{}, &empty); err != nil || len(empty) != 0 {
				t.Errorf("nil reply: %v %v", empty, err)
			}
			checkPending(t, "client", cl)
		})
	}
}

// TestCallServerToClient checks the three ways a server calls one of its
// connections: Server.Call by net id, handler.Conn.Call from a goroutine a
// callback started, and handler.Conn.Call straight from a callback that
// runs on the worker pool.
func TestCallServerToClient(t *testing.T) {
	t.Parallel()
	for _, m := range callModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			type result struct {
				sum int
				err error
			}
			results := make(chan result, 2)
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			srvR := handler.NewRouter()
			// opTrigger's callback calls the sender back: from a goroutine
			// it starts, and, on the worker pool, from the callback itself.
			srvR.On(opTrigger, func(c handler.Conn, _ []byte) error {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
					defer cancel()
					var r sumResp
					err := c.Call(ctx, opSum, sumReq{A: 20, B: 1}, &r)
					results <- result{r.Sum, err}
				}()
				if m.workers() {
					// Its own context: the goroutine's cancel must not end
					// this call if the goroutine's call ends first.
					ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
					defer cancel()
					var r sumResp
					err := c.Call(ctx, opSum, sumReq{A: 20, B: 2}, &r)
					results <- result{r.Sum, err}
				}
				return nil
			})
			srv, cl, id := callPair(t, m, srvR, sumRouter())
			ctx := testContext(t)

			var got sumResp
			if err := srv.Call(ctx, id, opSum, sumReq{A: 2, B: 3}, &got); err != nil {
				t.Fatalf("Server.Call: %v", err)
			}
			if got.Sum != 5 {
				t.Errorf("Server.Call: sum %d, want 5", got.Sum)
			}

			if err := cl.Send(opTrigger, struct{}{}); err != nil {
				t.Fatal(err)
			}
			want := map[int]bool{21: true}
			if m.workers() {
				want[22] = true
			}
			for range want {
				select {
				case r := <-results:
					if r.err != nil || !want[r.sum] {
						t.Errorf("Conn.Call: sum %d, %v", r.sum, r.err)
					}
				case <-ctx.Done():
					t.Fatal("Conn.Call did not return")
				}
			}
			c, ok := srv.Conn(id)
			if !ok {
				t.Fatal("connection gone")
			}
			checkPending(t, "server conn", c)
		})
	}
}

// TestCallRemoteFailures checks that what a remote call handler returns,
// and a call to an opcode with no call handler, come back as errors that
// errors.As and handler.ReasonOf recognise, and that the connection
// survives each of them.
func TestCallRemoteFailures(t *testing.T) {
	t.Parallel()
	srvR := sumRouter()
	handler.HandleCall(srvR, opFail, func(_ handler.Conn, req struct{ Kind string }) (sumResp, error) {
		switch req.Kind {
		case "value":
			return sumResp{}, handler.ArgumentValueError("a must be positive")
		case "custom":
			return sumResp{}, &handler.Error{Reason: "Teapot", Message: "short and stout"}
		case "plain":
			return sumResp{}, errors.New("database down")
		case "panic":
			panic("boom")
		}
		return sumResp{}, nil
	})
	srvR.On(7, func(handler.Conn, []byte) error { return nil }) // one-way only
	srv, cl, id := callPair(t, callModes[0], srvR, handler.NewRouter())
	ctx := testContext(t)

	for _, tc := range []struct {
		name   string
		op     codec.Opcode
		req    any
		reason string
		msg    string // "" skips the check
		typed  func(error) bool
	}{
		{"ArgumentValueError", opFail, map[string]string{"Kind": "value"}, handler.ReasonArgumentValueError,
			"a must be positive", func(err error) bool {
				var e handler.ArgumentValueError
				return errors.As(err, &e) && string(e) == "a must be positive"
			}},
		{"ArgumentMissing", opSum, map[string]int{"a": 1}, handler.ReasonArgumentMissing,
			"Expected argument 'b' in opcode 1", func(err error) bool {
				var e handler.ArgumentMissing
				return errors.As(err, &e) && string(e) == "Expected argument 'b' in opcode 1"
			}},
		{"ArgumentTypeError", opSum, map[string]any{"a": "one", "b": 2}, handler.ReasonArgumentTypeError,
			"", func(err error) bool {
				var e handler.ArgumentTypeError
				return errors.As(err, &e)
			}},
		{"custom reason", opFail, map[string]string{"Kind": "custom"}, "Teapot", "short and stout", nil},
		{"plain error", opFail, map[string]string{"Kind": "plain"}, handler.ReasonInternal, "internal error", nil},
		{"panic", opFail, map[string]string{"Kind": "panic"}, handler.ReasonInternal, "internal error", nil},
		{"unknown opcode", 99, struct{}{}, handler.ReasonUnknownOpcode, "No call handler for opcode 99", nil},
		{"one-way opcode", 7, struct{}{}, handler.ReasonUnknownOpcode, "No call handler for opcode 7", nil},
	} {
		var resp sumResp
		err := cl.Call(ctx, tc.op, tc.req, &resp)
		if err == nil {
			t.Errorf("%s: call succeeded", tc.name)
			continue
		}
		if got := handler.ReasonOf(err); got != tc.reason {
			t.Errorf("%s: ReasonOf(%v) = %q, want %q", tc.name, err, got, tc.reason)
		}
		if tc.typed != nil && !tc.typed(err) {
			t.Errorf("%s: errors.As does not find the typed failure in %v", tc.name, err)
		}
		if tc.typed == nil {
			var e *handler.Error
			if !errors.As(err, &e) {
				t.Errorf("%s: errors.As(*handler.Error) fails on %v", tc.name, err)
			} else if tc.msg != "" && e.Message != tc.msg {
				t.Errorf("%s: message %q, want %q", tc.name, e.Message, tc.msg)
			}
		}
		if errors.Is(err, engine.ErrClosed) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: a remote failure reads as a transport error: %v", tc.name, err)
		}
	}
	// The connection survived every failure.
	var got sumResp
	if err := cl.Call(ctx, opSum, sumReq{A: 1, B: 1}, &got); err != nil || got.Sum != 2 {
		t.Errorf("call after the failures: %v %v", got, err)
	}
	// The other way: the client has no call handler at all.
	err := srv.Call(ctx, id, opSum, sumReq{}, nil)
	var e *handler.Error
	if !errors.As(err, &e) || e.Reason != handler.ReasonUnknownOpcode {
		t.Errorf("Server.Call to a client with no call handler: %v", err)
	}
	checkPending(t, "client", cl)
}

// TestCallLocalErrors checks the errors a call returns without the peer's
// help.
func TestCallLocalErrors(t *testing.T) {
	t.Parallel()
	srv, cl, id := callPair(t, callModes[0], sumRouter(), handler.NewRouter())
	ctx := testContext(t)

	if err := cl.Call(ctx, -3, struct{}{}, nil); err == nil {
		t.Error("call on a negative opcode succeeded")
	}
	if err := cl.Call(ctx, opSum, 42, nil); !errors.Is(err, codec.ErrNotObject) {
		t.Errorf("request that is not an object: %v, want codec.ErrNotObject", err)
	}
	// A nil request is sent as {}: the handler finds its arguments missing.
	var missing handler.ArgumentMissing
	if err := cl.Call(ctx, opSum, nil, nil); !errors.As(err, &missing) || string(missing) != "Expected argument 'a' in opcode 1" {
		t.Errorf("nil request: %v, want ArgumentMissing for 'a'", err)
	}
	var wrong struct {
		Sum string `json:"sum"`
	}
	err := cl.Call(ctx, opSum, sumReq{A: 1, B: 2}, &wrong)
	var te *codec.TypeError
	if !errors.As(err, &te) {
		t.Errorf("reply of the wrong type: %v, want *codec.TypeError", err)
	}
	if err := srv.Call(ctx, id+1000, opSum, sumReq{}, nil); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("Server.Call to an unknown net id: %v, want ErrUnknownConn", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Call(ctx, id, opSum, sumReq{}, nil); !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("Server.Call after shutdown: %v, want ErrServerClosed", err)
	}
	select {
	case <-cl.Done():
	case <-ctx.Done():
		t.Fatal("client not closed by the shutdown")
	}
	start := time.Now()
	err = cl.Call(ctx, opSum, sumReq{}, nil)
	if !errors.Is(err, engine.ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("call on a closed client: %v, want ErrClosed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("call on a closed client took %v", d)
	}
}

// TestCallDeadline checks that the context bounds a call, both ways, that
// the abandoned call leaves nothing in the pending table, and that its late
// reply is ignored.
func TestCallDeadline(t *testing.T) {
	t.Parallel()
	m := callModes[2] // workers: the handler may block
	srvR, cliR := sumRouter(), sumRouter()
	srv, cl, id := callPair(t, m, srvR, cliR)
	srvBlock, cliBlock := newBlocker(t, srvR), newBlocker(t, cliR)
	ctx := testContext(t)

	for _, dir := range []struct {
		name string
		call func(context.Context, codec.Opcode, any, any) error
		b    *blocker
		conn func() handler.Conn
	}{
		{"client to server", cl.Call, srvBlock, func() handler.Conn { return cl }},
		{"server to client", func(ctx context.Context, op codec.Opcode, req, resp any) error {
			return srv.Call(ctx, id, op, req, resp)
		}, cliBlock, func() handler.Conn { c, _ := srv.Conn(id); return c }},
	} {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		start := time.Now()
		err := dir.call(cctx, opBlock, struct{}{}, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want context.DeadlineExceeded", dir.name, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: returned after %v", dir.name, d)
		}
		checkPending(t, dir.name, dir.conn())
		dir.b.wait(t)
		dir.b.free()
		// The late reply finds no call and is dropped; the connection
		// carries on.
		var got sumResp
		if err := dir.call(ctx, opSum, sumReq{A: 4, B: 5}, &got); err != nil || got.Sum != 9 {
			t.Errorf("%s: call after the deadline: %v %v", dir.name, got, err)
		}
		checkPending(t, dir.name, dir.conn())
	}
}

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

// sumCaller makes one call of opSum, on a client or through a server.
type sumCaller func(ctx context.Context, req sumReq, resp *sumResp) error

// clientSum calls opSum with cl.
func clientSum(cl *engine.Client) sumCaller {
	return func(ctx context.Context, req sumReq, resp *sumResp) error {
		return cl.Call(ctx, opSum, req, resp)
	}
}

// callBurst makes n calls of opSum with call at once, each from its own
// goroutine released together, and returns what each returned: nil only
// for a call answered with the right sum.
func callBurst(ctx context.Context, call sumCaller, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var got sumResp
			err := call(ctx, sumReq{A: i, B: 2 * i}, &got)
			if err == nil && got.Sum != 3*i {
				err = fmt.Errorf("call %d: sum %d", i, got.Sum)
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// checkBurst fails the test unless every call of a burst succeeded.
func checkBurst(t *testing.T, errs []error) {
	t.Helper()
	bad := 0
	for i, err := range errs {
		if err != nil {
			if bad++; bad <= 5 {
				t.Errorf("call %d: %v", i, err)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d calls failed", bad, len(errs))
	}
}

// TestCallManyInFlight makes 5000 calls at once on one connection, from
// the client and then from the server, with the default 1024-byte frames,
// and checks that each gets its own reply. 5000 requests are 5 MiB, past
// the default outbound cap (4 MiB): the calls past it wait for room. It
// starts 5000 goroutines, so it does not run in parallel with other tests
// (the race detector caps live goroutines).
func TestCallManyInFlight(t *testing.T) {
	srv, cl, id := callPair(t, callModes[0], sumRouter(), sumRouter())
	ctx := testContext(t)
	checkBurst(t, callBurst(ctx, clientSum(cl), 5000))
	checkPending(t, "client", cl)
	checkBurst(t, callBurst(ctx, func(ctx context.Context, req sumReq, resp *sumResp) error {
		return srv.Call(ctx, id, opSum, req, resp)
	}, 5000))
	c, ok := srv.Conn(id)
	if !ok {
		t.Fatal("connection gone")
	}
	checkPending(t, "server conn", c)
}

// TestCallBurstWaitsForRoom releases 4000 calls at once on one connection
// with 1024-byte frames and a client outbound cap of 64 KiB (64 frames):
// most calls wait for the loop to take the queue. Before, such a burst
// tripped the slow-consumer policy and closed the connection, failing every
// call. Not parallel: 4000 goroutines.
func TestCallBurstWaitsForRoom(t *testing.T) {
	srv := startServer(t, sumRouter())
	cl := callDial(t, srv.Addr().String(), handler.NewRouter(), engine.WithMaxOutbound(64<<10, engine.SlowClose))
	checkBurst(t, callBurst(testContext(t), clientSum(cl), 4000))
	select {
	case <-cl.Done():
		t.Fatalf("the burst closed the connection: %v", cl.Err())
	default:
	}
	checkPending(t, "client", cl)
}

// dialHeld dials srv (which answers opSum) with an outbound cap of 64 KiB,
// 64 frames of 1024 bytes, then holds the client's event loop in a
// callback until release is called or the test times out: the queue fills
// and nothing drains it.
func dialHeld(t *testing.T, srv *engine.Server) (cl *engine.Client, release func()) {
	t.Helper()
	const opHold = codec.Opcode(9)
	held, free := make(chan struct{}), make(chan struct{})
	r := handler.NewRouter()
	r.On(opHold, func(handler.Conn, []byte) error {
		close(held)
		select { // the event loop is stuck here
		case <-free:
		case <-time.After(testTimeout):
		}
		return nil
	})
	cl = callDial(t, srv.Addr().String(), r, engine.WithMaxOutbound(64<<10, engine.SlowClose))
	if err := cl.Call(testContext(t), opSum, sumReq{A: 1, B: 2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.SendAll(opHold, struct{}{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(testTimeout):
		t.Fatal("the hold callback did not run")
	}
	var once sync.Once
	release = func() { once.Do(func() { close(free) }) }
	t.Cleanup(release)
	return cl, release
}

// TestCallWaitingForRoomEnds blocks the client's event loop in a callback
// while 300 calls are made with a short deadline: the first 64 fill the
// queue (64 KiB of 1024-byte frames) and the rest wait for room. Every call
// must end with its context's error, not hang and not close the connection;
// once the loop is free, calls work again and nothing is left pending.
func TestCallWaitingForRoomEnds(t *testing.T) {
	srv := startServer(t, sumRouter())
	cl, release := dialHeld(t, srv)
	ctx, cancel := context.WithTimeout(testContext(t), 300*time.Millisecond)
	defer cancel()
	errs := callBurst(ctx, clientSum(cl), 300)
	release()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d, blocked behind the loop, ended with %v, want its deadline", i, err)
		}
	}
	var got sumResp
	if err := cl.Call(testContext(t), opSum, sumReq{A: 4, B: 5}, &got); err != nil || got.Sum != 9 {
		t.Fatalf("call after the loop was freed: %v %v (client: %v)", got, err, cl.Err())
	}
	checkPending(t, "client", cl)
}

// sumRequest is a -3 frame's object for opSum, as a hand-written peer reads
// it.
type sumRequest struct {
	ID   uint64 `json:"id"`
	Op   int    `json:"op"`
	Data sumReq `json:"data"`
}

// appendSumReply appends the -4 frame of the given size that answers r.
func appendSumReply(t *testing.T, dst []byte, size int, r sumRequest) []byte {
	t.Helper()
	f, err := codec.AppendValidated(dst, size, codec.OpReply,
		[]byte(fmt.Sprintf(`{"id":%d,"data":{"sum":%d}}`, r.ID, r.Data.A+r.Data.B)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitUntil polls cond until it holds, failing the test after testTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCallBudgetSlowPeer has a hand-written server stop reading while the
// client makes 1000 calls with 16 KiB frames and a 64 KiB outbound cap: the
// requests fill the kernel's buffers, then the calls' budget, and the rest
// of the calls wait. A one-way send made meanwhile must be accepted (it
// has a budget of its own). Then the server reads every request without
// answering any: with no inbound traffic to prompt it, only the client's
// timed look at gnet's buffer lets the waiting calls go. Once it has read
// them all, it answers them all. Before, the requests piled up in gnet's
// buffer until the slow-consumer policy closed the connection and failed
// every call. Not parallel: 1000 goroutines.
func TestCallBudgetSlowPeer(t *testing.T) {
	const n, size, opNote = 1000, 16 << 10, codec.Opcode(7)
	addr, accept := rawServer(t, size)
	cl := callDial(t, addr, handler.NewRouter(), engine.WithMaxOutbound(64<<10, engine.SlowClose))
	p := accept()
	select {
	case <-cl.Ready():
	case <-time.After(testTimeout):
		t.Fatal("client not ready")
	}
	var errs []error
	burst := make(chan struct{})
	go func() { defer close(burst); errs = callBurst(testContext(t), clientSum(cl), n) }()

	waitUntil(t, "calls waiting for room", func() bool { w, _ := engine.CallRoom(cl); return w > 0 })
	if err := cl.Send(opNote, map[string]int{"n": 1}); err != nil {
		t.Fatalf("send while calls wait for room: %v", err)
	}
	// 16 MB of requests cannot all fit in the kernel's buffers while the
	// server does not read (a few MB on Linux loopback).
	time.Sleep(300 * time.Millisecond)
	if w, _ := engine.CallRoom(cl); w == 0 {
		t.Fatal("no call waits: the kernel took every request, the test proves nothing")
	}

	var reqs []sumRequest
	notes := 0
	for len(reqs) < n {
		op, obj := p.read()
		switch op {
		case codec.OpRequest:
			var r sumRequest
			if err := codec.Unmarshal(obj, &r); err != nil || r.Op != int(opSum) {
				t.Fatalf("request %s: %v", obj, err)
			}
			reqs = append(reqs, r)
		case opNote:
			notes++
		default:
			t.Fatalf("unexpected frame %d%s", op, obj)
		}
	}
	var out []byte
	for _, r := range reqs {
		out = appendSumReply(t, out, size, r)
	}
	if _, err := p.conn.Write(out); err != nil {
		t.Fatal(err)
	}
	<-burst
	checkBurst(t, errs)
	if notes != 1 {
		t.Errorf("the server read the send made while calls waited %d times, want 1", notes)
	}
	select {
	case <-cl.Done():
		t.Fatalf("the connection closed: %v", cl.Err())
	default:
	}
	checkPending(t, "client", cl)
	waitUntil(t, "the calls' budget to be released", func() bool { _, b := engine.CallRoom(cl); return b == 0 })
}

// TestClientHeldFramesPaced makes 1000 calls and 200 sends with 8 KiB
// frames before the client knows the message size, so the client holds
// them all, with a 64 KiB outbound cap; then a hand-written server greets
// it and does not read for a while. The held frames must be written as the
// calls' budget allows, not all at once: 9.6 MB cannot fit in the kernel's
// buffers, so some are still held, and the connection is still open. Then
// the server reads everything, in order (the sends in the order made), and
// answers every call. Before, the client wrote every held frame at once,
// past the cap, and closed itself as a slow consumer. Not parallel: 1000
// goroutines.
func TestClientHeldFramesPaced(t *testing.T) {
	const calls, sends, size, opNote = 1000, 200, 8192, codec.Opcode(7)
	addr, accept := rawServer(t, size)
	cl := callDial(t, addr, handler.NewRouter(), engine.WithMaxOutbound(64<<10, engine.SlowClose))
	var errs []error
	burst := make(chan struct{})
	go func() { defer close(burst); errs = callBurst(testContext(t), clientSum(cl), calls) }()
	for i := range sends {
		if err := cl.Send(opNote, map[string]int{"seq": i}); err != nil {
			t.Fatalf("send %d before the size is known: %v", i, err)
		}
	}
	waitUntil(t, "every frame held", func() bool { return engine.HeldFrames(cl) == calls+sends })
	p := accept()
	time.Sleep(200 * time.Millisecond) // the server does not read yet
	if n := engine.HeldFrames(cl); n == 0 {
		t.Error("every held frame was written at once")
	}
	if _, b := engine.CallRoom(cl); b > 64<<10 {
		t.Errorf("%d bytes charged to the calls' budget, past the cap", b)
	}
	select {
	case <-cl.Done():
		t.Fatalf("the connection closed: %v", cl.Err())
	default:
	}

	var out []byte
	got, next := 0, 0
	for got < calls || next < sends {
		op, obj := p.read()
		switch op {
		case codec.OpRequest:
			var r sumRequest
			if err := codec.Unmarshal(obj, &r); err != nil {
				t.Fatalf("request %s: %v", obj, err)
			}
			out = appendSumReply(t, out, size, r)
			got++
		case opNote:
			var m struct{ Seq int }
			if err := codec.Unmarshal(obj, &m); err != nil || m.Seq != next {
				t.Fatalf("send %s, want seq %d (%v)", obj, next, err)
			}
			next++
		default:
			t.Fatalf("unexpected frame %d%s", op, obj)
		}
	}
	if _, err := p.conn.Write(out); err != nil {
		t.Fatal(err)
	}
	<-burst
	checkBurst(t, errs)
	checkPending(t, "client", cl)
	if n := engine.HeldFrames(cl); n != 0 {
		t.Errorf("%d frames still held", n)
	}
	waitUntil(t, "the calls' budget to be released", func() bool { _, b := engine.CallRoom(cl); return b == 0 })
}

// TestCallRepliesOutOfOrder has a hand-written server read 5000 requests
// in flight on one connection, check that their ids are unique, and answer
// them in shuffled order, some with a reply failure, after a reply to an
// id nobody used; then it repeats a reply already given. Each Call must get
// its own answer, and the stray replies must be ignored. Not parallel, as
// TestCallManyInFlight.
func TestCallRepliesOutOfOrder(t *testing.T) {
	const n = 5000
	addr, accept := rawServer(t, 128)
	cl := callDial(t, addr, handler.NewRouter())
	p := accept()
	ctx := testContext(t)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got sumResp
			err := cl.Call(ctx, opSum, sumReq{A: i, B: 2 * i}, &got)
			var ve handler.ArgumentValueError
			switch {
			case i%10 == 0:
				if !errors.As(err, &ve) || string(ve) != fmt.Sprintf("no %d", i) {
					errs <- fmt.Errorf("call %d: %v, want ArgumentValueError \"no %d\"", i, err, i)
				}
			case err != nil || got.Sum != 3*i:
				errs <- fmt.Errorf("call %d: %v %v", i, got, err)
			}
		}()
	}

	type request struct {
		ID   uint64
		Op   codec.Opcode
		Data sumReq
	}
	reqs := make([]request, 0, n)
	seen := make(map[uint64]bool, n)
	for range n {
		op, obj := p.read()
		var r request
		if err := codec.Unmarshal(obj, &r); op != codec.OpRequest || err != nil || r.Op != opSum {
			t.Fatalf("request: %d %s %v", op, obj, err)
		}
		if seen[r.ID] {
			t.Fatalf("id %d used twice among pending calls", r.ID)
		}
		seen[r.ID] = true
		reqs = append(reqs, r)
	}
	var maxID uint64
	for id := range seen {
		maxID = max(maxID, id)
	}
	// Python's spacing, as the original would write it.
	p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": -1}}`, maxID+1))
	p.write(fmt.Sprintf(`-5{"id": %d, "reason": "ArgumentValueError", "message": "stray"}`, maxID+2))
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	w := bufio.NewWriter(p.conn)
	frame := make([]byte, 0, p.size)
	for _, r := range reqs {
		var err error
		if r.Data.A%10 == 0 {
			frame, err = codec.AppendFailureOp(frame[:0], p.size, codec.OpReplyFailure, &r.ID,
				handler.ReasonArgumentValueError, fmt.Sprintf("no %d", r.Data.A))
		} else {
			frame, err = codec.AppendRaw(frame[:0], p.size, codec.OpReply,
				fmt.Appendf(nil, `{"id": %d, "data": {"sum": %d}}`, r.ID, r.Data.A+r.Data.B))
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// A second answer to a call already answered is dropped.
	p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": -1}}`, reqs[0].ID))
	close(errs)
	bad := 0
	for err := range errs {
		if bad++; bad <= 5 {
			t.Error(err)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d calls failed", bad, n)
	}
	checkPending(t, "client", cl)
	// The connection is still in step.
	errc := make(chan error, 1)
	go func() {
		var got sumResp
		err := cl.Call(ctx, opSum, sumReq{A: 1, B: 1}, &got)
		if err == nil && got.Sum != 2 {
			err = fmt.Errorf("sum %d", got.Sum)
		}
		errc <- err
	}()
	var last request
	op, obj := p.read()
	if err := codec.Unmarshal(obj, &last); op != codec.OpRequest || err != nil {
		t.Fatalf("request: %d %s %v", op, obj, err)
	}
	p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": 2}}`, last.ID))
	if err := <-errc; err != nil {
		t.Errorf("call after the stray replies: %v", err)
	}
}

// originalPeer answers like the original Python simplerpc: application
// frames are echoed, protocol frames it does not know (-3 and below) are
// handed to handlers that drop them. It reads until the peer closes.
func originalPeer(p *rawPeer, got chan<- string) {
	buf := make([]byte, p.size)
	for {
		if _, err := io.ReadFull(p.r, buf); err != nil {
			close(got)
			return
		}
		op, obj, err := codec.Decode(buf)
		if err != nil {
			continue
		}
		got <- fmt.Sprintf("%d%s", op, obj)
		if op >= 0 {
			frame, _ := codec.AppendRaw(nil, p.size, op, obj)
			if _, err := p.conn.Write(frame); err != nil {
				close(got)
				return
			}
		}
	}
}

// TestCallOriginalPeer checks, against hand-written peers that behave like
// the original, that a call they do not understand ends with the caller's
// deadline and leaves the stream in step, in both directions.
func TestCallOriginalPeer(t *testing.T) {
	t.Parallel()
	t.Run("client calls an original server", func(t *testing.T) {
		t.Parallel()
		addr, accept := rawServer(t, 256)
		echoes := newRecorder()
		r := handler.NewRouter()
		r.On(0, func(_ handler.Conn, data []byte) error {
			echoes.add(string(data))
			return nil
		})
		cl := callDial(t, addr, r)
		p := accept()
		got := make(chan string, 16)
		done := make(chan struct{})
		go func() { defer close(done); originalPeer(p, got) }()
		ctx := testContext(t)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := cl.Call(cctx, opSum, sumReq{A: 1, B: 2}, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call: %v, want context.DeadlineExceeded", err)
		}
		checkPending(t, "client", cl)
		if err := cl.Send(0, map[string]int{"x": 1}); err != nil {
			t.Fatal(err)
		}
		if e := echoes.wait(t, 1); e[0] != `{"x":1}` {
			t.Errorf("echo %q", e[0])
		}
		if f := <-got; f != `-3{"id":1,"op":1,"data":{"a":1,"b":2}}` {
			t.Errorf("original server read %q", f)
		}
		_ = cl.Close()
		<-done
	})
	t.Run("server calls an original client", func(t *testing.T) {
		t.Parallel()
		ids := make(chan uint64, 1)
		srv := startServer(t, echoRouter(), engine.WithMessageSize(256),
			engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
		p := dialRaw(t, srv.Addr().String())
		p.greet(256)
		ctx := testContext(t)
		id := <-ids
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := srv.Call(cctx, id, opSum, sumReq{A: 1, B: 2}, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Server.Call: %v, want context.DeadlineExceeded", err)
		}
		c, _ := srv.Conn(id)
		checkPending(t, "server conn", c)
		if f := p.readText(); f != `-3{"id":1,"op":1,"data":{"a":1,"b":2}}` {
			t.Errorf("original client read %q", f)
		}
		p.write(`0{"some_data": 123}`)
		if f := p.readText(); f != `0{"some_data": 123}` {
			t.Errorf("echo %q", f)
		}
	})
}

// TestCallWireFormat checks the frames of docs/PROTOCOL.md §5 and §6 byte
// for byte, with hand-written peers on both sides: what a caller writes,
// what a callee answers, and what each ignores.
func TestCallWireFormat(t *testing.T) {
	t.Parallel()
	t.Run("server answers", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, sumRouter(), engine.WithMessageSize(256))
		p := dialRaw(t, srv.Addr().String())
		p.greet(256)
		for _, tc := range []struct{ send, want string }{
			{`-3{"id": 7, "op": 1, "data": {"a": 2, "b": 3}}`, `-4{"id":7,"data":{"sum":5}}`},
			{`-3{"id": 8, "op": 99, "data": {}}`, `-5{"id":8,"reason":"UnknownOpcode","message":"No call handler for opcode 99"}`},
			{`-3{"id": 9, "op": 1, "data": {"a": 2}}`, `-5{"id":9,"reason":"ArgumentMissing","message":"Expected argument 'b' in opcode 1"}`},
			{`-3{"id": 18446744073709551615, "op": 1, "data": {"a": 0, "b": 0}}`, `-4{"id":18446744073709551615,"data":{"sum":0}}`},
			{`-3{"id": 12, "op": -1, "data": {}}`, `-5{"id":12,"reason":"UnknownOpcode","message":"No call handler for opcode -1"}`},
			{`-3{"op": 1, "data": {}}`, `-1{"reason":"MalformedPayload","message":"Malformed request frame"}`},
			{`-3{"id": "13", "op": 1, "data": {}}`, `-1{"reason":"MalformedPayload","message":"Malformed request frame"}`},
			{`-3{"id": 10, "op": 1, "data": [1]}`, `-1{"reason":"MalformedPayload","message":"Malformed request frame"}`},
			// simplerpc's own compact form, read in one pass; what that
			// pass refuses is read the general way, with the same answers.
			{`-3{"id":20,"op":1,"data":{"a":2,"b":3}}`, `-4{"id":20,"data":{"sum":5}}`},
			{`-3{"id":21,"op":1,"data":{"a":2,"b":3},"x":{}}`, `-4{"id":21,"data":{"sum":5}}`},
			{`-3{"id":022,"op":1,"data":{"a":2,"b":3}}`, `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{"-3{\"id\":23,\"op\":1,\"data\":{\"a\":2,\"b\":3,\"c\":\"\xff\"}}", `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{`-3{"id":24,"op":1,"data":{"a":2,"b":3}`, `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{`-3{"id":25,"op":1,"data":{"a":2,"b":3}}}`, `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{`-6{"t": 42}`, `-7{"t": 42}`},
		} {
			p.write(tc.send)
			if got := p.readText(); got != tc.want {
				t.Errorf("sent %s\n got %s\nwant %s", tc.send, got, tc.want)
			}
		}
		// Replies nobody asked for, a pong nobody asked for, and an
		// unknown protocol opcode are ignored: the next answer is the
		// next request's.
		for _, s := range []string{`-4{"id": 12345, "data": {}}`, `-5{"id": 1, "reason": "X", "message": ""}`,
			`-7{"t": 1}`, `-9{}`} {
			p.write(s)
		}
		p.write(`-3{"id": 11, "op": 1, "data": {"a": 1, "b": 1}}`)
		if got := p.readText(); got != `-4{"id":11,"data":{"sum":2}}` {
			t.Errorf("after ignored frames: %s", got)
		}
	})
	t.Run("client calls and answers", func(t *testing.T) {
		t.Parallel()
		addr, accept := rawServer(t, 256)
		cl := callDial(t, addr, sumRouter())
		p := accept()
		ctx := testContext(t)
		errc := make(chan error, 1)
		go func() {
			var got sumResp
			err := cl.Call(ctx, opSum, sumReq{A: 1, B: 2}, &got)
			if err == nil && got.Sum != 3 {
				err = fmt.Errorf("sum %d", got.Sum)
			}
			errc <- err
		}()
		if got := p.readText(); got != `-3{"id":1,"op":1,"data":{"a":1,"b":2}}` {
			t.Errorf("client's request: %s", got)
		}
		p.write(`-3{"id": 1, "op": 1, "data": {"a": 40, "b": 2}}`) // the same id, the other way
		if got := p.readText(); got != `-4{"id":1,"data":{"sum":42}}` {
			t.Errorf("client's reply: %s", got)
		}
		p.write(`-9{}`) // an unknown protocol opcode: ignored
		p.write(`-6{"t": 5}`)
		if got := p.readText(); got != `-7{"t": 5}` {
			t.Errorf("client's pong: %s", got)
		}
		p.write(`-4{"id": 1, "data": {"sum": 3}}`)
		if err := <-errc; err != nil {
			t.Errorf("call: %v", err)
		}
		checkPending(t, "client", cl)
	})
}

// TestCallTooLarge checks that a request or a reply that does not fit the
// connection's frame size fails the call at once, instead of being dropped
// and leaving the caller to its deadline: the caller gets
// codec.ErrFrameTooLarge for its own request, and a reply failure for a
// reply too large. Both ways, and the connection carries on.
func TestCallTooLarge(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 300) // fits the bounds, not a 256-byte frame
	bigRouter := func() *handler.Router {
		r := sumRouter()
		r.OnCall(30, func(handler.Conn, []byte) (any, error) { return map[string]string{"s": big}, nil })
		return r
	}
	ids := make(chan uint64, 1)
	srv := startServer(t, bigRouter(), engine.WithMessageSize(256),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	cl := callDial(t, srv.Addr().String(), bigRouter())
	ctx := testContext(t)
	id := <-ids
	for _, dir := range []struct {
		name string
		call func(context.Context, codec.Opcode, any, any) error
	}{
		{"client to server", cl.Call},
		{"server to client", func(ctx context.Context, op codec.Opcode, req, resp any) error {
			return srv.Call(ctx, id, op, req, resp)
		}},
	} {
		start := time.Now()
		err := dir.call(ctx, opSum, map[string]any{"a": 1, "b": 2, "pad": big}, nil)
		if !errors.Is(err, codec.ErrFrameTooLarge) {
			t.Errorf("%s: request too large: %v, want codec.ErrFrameTooLarge", dir.name, err)
		}
		err = dir.call(ctx, 30, struct{}{}, nil)
		var e *handler.Error
		if !errors.As(err, &e) || e.Reason != handler.ReasonInternal || e.Message != "reply too large" {
			t.Errorf("%s: reply too large: %v, want InternalError \"reply too large\"", dir.name, err)
		}
		if d := time.Since(start); d > testTimeout/2 {
			t.Errorf("%s: took %v", dir.name, d)
		}
		var got sumResp
		if err := dir.call(ctx, opSum, sumReq{A: 2, B: 2}, &got); err != nil || got.Sum != 4 {
			t.Errorf("%s: call after: %v %v", dir.name, got, err)
		}
	}
	checkPending(t, "client", cl)
}

// TestCallDialerClose closes a Dialer whose 100 clients all have a call in
// flight while each keeps sending: every call ends with ErrClosed, and the
// loop survives closing many connections while its queue keeps filling (a
// nested round used to drain the queue and reuse the buffer being drained).
// Not parallel: its senders spin.
func TestCallDialerClose(t *testing.T) {
	const clients = 100
	srvR := sumRouter()
	// The senders start once every request has reached the server: before
	// that they could fill a client's outbound queue ahead of its call's
	// request, which would then fail with ErrOutboundFull, not ErrClosed.
	var requests atomic.Int64
	allSent := make(chan struct{})
	srv := startServer(t, srvR, engine.WithWorkerPool(2, 1024),
		engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
			if op == codec.OpRequest && requests.Add(1) == clients {
				close(allSent)
			}
		}))
	b := newBlocker(t, srvR)
	d, err := engine.NewDialer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := testContext(t)
	cls := make([]*engine.Client, clients)
	for i := range cls {
		if cls[i], err = d.Dial(ctx, srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*clients)
	stop := make(chan struct{})
	for _, cl := range cls {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- cl.Call(ctx, opBlock, struct{}{}, nil) }()
		wg.Add(1)
		go func() { // keeps the loop's queue busy during the close
			defer wg.Done()
			select {
			case <-allSent:
			case <-stop:
				return
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if cl.Send(opFlood, struct{}{}) != nil {
					return
				}
			}
		}()
	}
	b.wait(t)
	select {
	case <-allSent:
	case <-ctx.Done():
		t.Fatal("requests did not all reach the server")
	}
	time.Sleep(20 * time.Millisecond) // let the senders fill the queue
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, engine.ErrClosed) {
			t.Errorf("call on a closed dialer: %v, want ErrClosed", err)
		}
	}
	for _, cl := range cls {
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("client not closed")
		}
		checkPending(t, "client", cl)
	}
}
