// Tests of calls both ways: the call helpers, typed calls from client to
// server and back, remote failures, local errors and deadlines.

package engine_test

import (
	"context"
	"errors"
	"net"
	"sync"
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

func checkPending(t *testing.T, what string, c any) {
	t.Helper()
	var n int
	switch c := c.(type) {
	case *engine.Client:
		n = engine.ClientPendingCalls(c)
	case handler.Conn:
		n = engine.PendingCalls(c)
	}
	if n != 0 {
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
		{"client to server", cl.Call, srvBlock, cl.Conn},
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
