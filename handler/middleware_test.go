package handler_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// tracing returns a middleware that records, around frames and calls,
// "name> op" on the way in and "<name op outcome" on the way out, with
// "panic" as the outcome of a callback that panicked.
func (r *recorder) tracing(name string) handler.Middleware {
	return handler.Middleware{
		Frame: func(next handler.FrameHandler) handler.FrameHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) (err error) {
				r.add("%s> frame %d %s", name, op, data)
				done := false
				defer func() {
					if !done {
						r.add("<%s frame %d panic", name, op)
					}
				}()
				err = next(c, op, data)
				done = true
				r.add("<%s frame %d %v", name, op, err)
				return err
			}
		},
		Call: func(next handler.CallHandler) handler.CallHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) (any, error) {
				r.add("%s> call %d %s", name, op, data)
				res, err := next(c, op, data)
				r.add("<%s call %d %v %v", name, op, res, err)
				return res, err
			}
		},
	}
}

func TestUseRunsMiddlewareInOrder(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(1, rec.raw("before"))
	r.Use(rec.tracing("a"), rec.tracing("b"))
	r.On(1, rec.raw("after")) // registered after Use: still wrapped
	r.OnCall(2, func(handler.Conn, []byte) (any, error) { return "r", nil })
	c := &fakeConn{}

	mustDispatch(t, r, c, 1, `{"x":1}`)
	wantCalls(t, &rec,
		`a> frame 1 {"x":1}`, `b> frame 1 {"x":1}`,
		`before {"x":1}`, `after {"x":1}`,
		`<b frame 1 <nil>`, `<a frame 1 <nil>`)

	res, fail := r.DispatchCall(c, 2, []byte(`{}`))
	if res != "r" || fail != nil {
		t.Fatalf("DispatchCall = %v, %v; want r, nil", res, fail)
	}
	wantCalls(t, &rec, `a> call 2 {}`, `b> call 2 {}`, `<b call 2 r <nil>`, `<a call 2 r <nil>`)

	// A later Use goes inside the earlier ones.
	r.Use(rec.tracing("c"))
	mustDispatch(t, r, c, 1, `{}`)
	wantCalls(t, &rec, `a> frame 1 {}`, `b> frame 1 {}`, `c> frame 1 {}`, `before {}`, `after {}`,
		`<c frame 1 <nil>`, `<b frame 1 <nil>`, `<a frame 1 <nil>`)
}

func TestMiddlewareSeesOutcomes(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.Use(rec.tracing("m"))
	r.On(1, func(handler.Conn, []byte) error { return handler.ArgumentMissing("need x") })
	r.Forward(rec.forward("fwd"))
	r.OnCall(3, func(handler.Conn, []byte) (any, error) { return nil, errors.New("db down") })
	c := &fakeConn{}

	// The middleware sees the callback's own error; the router turns it
	// into the failure after.
	if fail := r.Dispatch(c, 1, []byte(`{}`)); fail == nil || fail.Reason != handler.ReasonArgumentMissing {
		t.Fatalf("Dispatch(1) = %v, want ArgumentMissing", fail)
	}
	wantCalls(t, &rec, `m> frame 1 {}`, `<m frame 1 need x`)

	// A catch-all alone makes the frame handled, and seen.
	mustDispatch(t, r, c, 7, `{}`)
	wantCalls(t, &rec, `m> frame 7 {}`, `fwd op=7 {}`, `<m frame 7 <nil>`)

	if _, fail := r.DispatchCall(c, 3, []byte(`{}`)); fail == nil || fail.Reason != handler.ReasonInternal || fail.Message != "internal error" {
		t.Fatalf("DispatchCall(3) = %v, want InternalError: internal error", fail)
	}
	wantCalls(t, &rec, `m> call 3 {}`, `<m call 3 <nil> db down`)

	// A call with no handler reaches the middleware, which sees the
	// UnknownOpcode failure.
	_, fail := r.DispatchCall(c, 9, []byte(`{}`))
	if fail == nil || fail.Reason != handler.ReasonUnknownOpcode {
		t.Fatalf("DispatchCall(9) = %v, want UnknownOpcode", fail)
	}
	got := rec.take()
	if len(got) != 2 || !strings.Contains(got[1], "UnknownOpcode") {
		t.Fatalf("middleware saw %q, want the UnknownOpcode failure", got)
	}

	// Failure frames from the peer never reach it.
	r.On(codec.OpFailure, rec.raw("failure"))
	mustDispatch(t, r, c, codec.OpFailure, `{"reason":"X","message":"y"}`)
	wantCalls(t, &rec, `failure {"reason":"X","message":"y"}`)
}

func TestMiddlewareSeesPanics(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.Use(rec.tracing("m"))
	r.On(1, func(handler.Conn, []byte) error { panic("boom") })
	fail := r.Dispatch(&fakeConn{}, 1, []byte(`{}`))
	if fail == nil || fail.Reason != handler.ReasonInternal {
		t.Fatalf("Dispatch = %v, want InternalError", fail)
	}
	wantCalls(t, &rec, `m> frame 1 {}`, `<m frame 1 panic`)

	// A middleware's own panic is recovered as a callback's is.
	r2 := handler.NewRouter()
	r2.OnCall(1, func(handler.Conn, []byte) (any, error) { return nil, nil })
	r2.Use(handler.Middleware{Call: func(handler.CallHandler) handler.CallHandler {
		return func(handler.Conn, codec.Opcode, []byte) (any, error) { panic("mw") }
	}})
	if _, fail := r2.DispatchCall(&fakeConn{}, 1, []byte(`{}`)); fail == nil || fail.Reason != handler.ReasonInternal {
		t.Fatalf("DispatchCall = %v, want InternalError", fail)
	}
}

func TestMiddlewareCanRefuseAndReplace(t *testing.T) {
	t.Parallel()
	var ran bool
	r := handler.NewRouter()
	r.On(1, func(handler.Conn, []byte) error { ran = true; return nil })
	r.OnCall(2, func(handler.Conn, []byte) (any, error) { return "secret", nil })
	// Per-opcode authorisation: opcode 1 only for connection 7; calls get
	// their result wrapped.
	r.Use(handler.Middleware{
		Frame: func(next handler.FrameHandler) handler.FrameHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) error {
				if op == 1 && c.ID() != 7 {
					return &handler.Error{Reason: "Unauthorized", Message: "not for you"}
				}
				return next(c, op, data)
			}
		},
		Call: func(next handler.CallHandler) handler.CallHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) (any, error) {
				res, err := next(c, op, data)
				return map[string]any{"wrapped": res}, err
			}
		},
	})
	if fail := r.Dispatch(&fakeConn{id: 1}, 1, []byte(`{}`)); fail == nil || fail.Reason != "Unauthorized" || ran {
		t.Fatalf("Dispatch from conn 1 = %v (ran %v), want Unauthorized, not run", fail, ran)
	}
	mustDispatch(t, r, &fakeConn{id: 7}, 1, `{}`)
	if !ran {
		t.Fatal("callback did not run for conn 7")
	}
	res, _ := r.DispatchCall(&fakeConn{}, 2, []byte(`{}`))
	if m, ok := res.(map[string]any); !ok || m["wrapped"] != "secret" {
		t.Fatalf("DispatchCall = %v, want the wrapped result", res)
	}
}

func TestMiddlewareOfOneKind(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(1, rec.raw("cb"))
	r.OnCall(1, func(handler.Conn, []byte) (any, error) { return nil, nil })
	m := rec.tracing("calls")
	m.Frame = nil
	r.Use(m)
	mustDispatch(t, r, &fakeConn{}, 1, `{}`)
	wantCalls(t, &rec, `cb {}`)
	_, _ = r.DispatchCall(&fakeConn{}, 1, []byte(`{}`))
	wantCalls(t, &rec, `calls> call 1 {}`, `<calls call 1 <nil> <nil>`)
}

func TestClearAllRemovesMiddleware(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.Use(rec.tracing("m"))
	r.ClearAll()
	r.On(1, rec.raw("cb"))
	mustDispatch(t, r, &fakeConn{}, 1, `{}`)
	wantCalls(t, &rec, `cb {}`)
}

func TestUsePanicsOnEmptyMiddleware(t *testing.T) {
	t.Parallel()
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	mustPanic("Use(Middleware{})", func() { handler.NewRouter().Use(handler.Middleware{}) })
	mustPanic("a nil FrameHandler", func() {
		handler.NewRouter().Use(handler.Middleware{Frame: func(handler.FrameHandler) handler.FrameHandler { return nil }})
	})
}

// timing is a middleware that measures every frame and call, as a metrics
// middleware does: two clock reads and a store, no allocation.
func timing(last *time.Duration) handler.Middleware {
	return handler.Middleware{
		Frame: func(next handler.FrameHandler) handler.FrameHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) error {
				start := time.Now()
				err := next(c, op, data)
				*last = time.Since(start)
				return err
			}
		},
		Call: func(next handler.CallHandler) handler.CallHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) (any, error) {
				start := time.Now()
				done := false
				defer func() {
					if !done {
						*last = -1
					}
				}()
				res, err := next(c, op, data)
				done = true
				*last = time.Since(start)
				return res, err
			}
		},
	}
}

var callResult = &struct{ OK bool }{true}

// TestMiddlewareAllocs holds dispatch to zero allocations with and without
// middleware, for frames and calls.
func TestMiddlewareAllocs(t *testing.T) {
	r := handler.NewRouter()
	r.On(1, nopFunc)
	r.OnCall(2, func(handler.Conn, []byte) (any, error) { return callResult, nil })
	c := &fakeConn{}
	check := func(what string) {
		t.Helper()
		if n := testing.AllocsPerRun(100, func() { r.Dispatch(c, 1, benchData) }); n != 0 {
			t.Errorf("%s: Dispatch allocates %v times, want 0", what, n)
		}
		if n := testing.AllocsPerRun(100, func() { r.DispatchCall(c, 2, benchData) }); n != 0 {
			t.Errorf("%s: DispatchCall allocates %v times, want 0", what, n)
		}
	}
	check("no middleware")
	var last time.Duration
	r.Use(timing(&last), timing(&last))
	check("two timing middlewares")
	if last < 0 {
		t.Error("timing middleware saw a panic")
	}
}
