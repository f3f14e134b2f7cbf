// Tests of the Router: callbacks per opcode and their order, catch-alls,
// call handlers, registration and dispatch under concurrent use.

package handler_test

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// recorder collects the calls callbacks make, in order.
type recorder struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

// raw returns a callback that records name and the data.
func (r *recorder) raw(name string) handler.Func {
	return func(_ handler.Conn, data []byte) error {
		r.add("%s %s", name, data)
		return nil
	}
}

func (r *recorder) forward(name string) handler.ForwardFunc {
	return func(_ handler.Conn, op codec.Opcode, data []byte) error {
		r.add("%s op=%d %s", name, op, data)
		return nil
	}
}

func wantCalls(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	got := rec.take()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls:\n got  %q\n want %q", got, want)
	}
}

func mustDispatch(t *testing.T, r *handler.Router, c handler.Conn, op codec.Opcode, data string) {
	t.Helper()
	if fail := r.Dispatch(c, op, []byte(data)); fail != nil {
		t.Fatalf("Dispatch(%d, %s) = %v, want nil", op, data, fail)
	}
}

func TestOnRunsCallbacksInOrder(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(5, rec.raw("a"))
	r.On(5, rec.raw("b"))
	r.On(5, rec.raw("c"))
	r.On(6, rec.raw("other"))

	mustDispatch(t, r, &fakeConn{}, 5, `{"k":1}`)
	wantCalls(t, &rec, `a {"k":1}`, `b {"k":1}`, `c {"k":1}`)
}

func TestOnPassesConnAndBorrowedData(t *testing.T) {
	t.Parallel()
	r := handler.NewRouter()
	conn := &fakeConn{id: 42}
	data := []byte(`{"echo":"hi"}`)
	var gotConn handler.Conn
	var gotData []byte
	r.On(0, func(c handler.Conn, d []byte) error {
		gotConn, gotData = c, d
		return c.SendRaw(0, d)
	})
	if fail := r.Dispatch(conn, 0, data); fail != nil {
		t.Fatal(fail)
	}
	if gotConn != handler.Conn(conn) {
		t.Errorf("callback got conn %v, want the dispatching conn", gotConn)
	}
	// The data is the caller's buffer, not a copy.
	if &gotData[0] != &data[0] || len(gotData) != len(data) {
		t.Errorf("callback got a copy of the data, want the caller's slice")
	}
	if got, want := conn.frames(), []sent{{0, `{"echo":"hi"}`}}; !reflect.DeepEqual(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}

func TestOnFirstErrorStopsTheRest(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(3, rec.raw("first"))
	r.On(3, func(handler.Conn, []byte) error {
		rec.add("second")
		return handler.ArgumentValueError("bad value")
	})
	r.On(3, rec.raw("third"))
	r.Forward(rec.forward("fwd"))

	fail := r.Dispatch(nil, 3, []byte(`{}`))
	if fail == nil || fail.Reason != handler.ReasonArgumentValueError || fail.Message != "bad value" {
		t.Fatalf("Dispatch = %#v, want ArgumentValueError: bad value", fail)
	}
	wantCalls(t, &rec, "first {}", "second")

	// An error from a catch-all stops the later catch-alls.
	r.Forward(func(handler.Conn, codec.Opcode, []byte) error { return handler.MalformedPayload("no") })
	r.Forward(rec.forward("never"))
	fail = r.Dispatch(nil, 4, []byte(`{}`))
	if fail == nil || fail.Reason != handler.ReasonMalformedPayload {
		t.Fatalf("Dispatch = %v, want MalformedPayload", fail)
	}
	wantCalls(t, &rec, "fwd op=4 {}")
}

func TestClear(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	for _, op := range []codec.Opcode{1, 2, 1000, 1 << 30} {
		r.On(op, rec.raw(fmt.Sprint(op)))
		r.OnCall(op, func(handler.Conn, []byte) (any, error) { return nil, nil })
	}
	r.Clear(1)
	r.Clear(1000)
	r.Clear(7)    // nothing registered: no effect
	r.Clear(5000) // nothing registered, large
	r.Clear(-1)   // no failure callback: no effect
	r.Clear(-3)   // never registrable: no effect

	for _, op := range []codec.Opcode{1, 2, 1000, 1 << 30} {
		mustDispatch(t, r, nil, op, `{}`)
	}
	wantCalls(t, &rec, "2 {}", "1073741824 {}")
	for op, want := range map[codec.Opcode]bool{1: false, 2: true, 1000: false, 1 << 30: true} {
		if got := r.Handles(op); got != want {
			t.Errorf("Handles(%d) = %v, want %v", op, got, want)
		}
		_, fail := r.DispatchCall(nil, op, []byte(`{}`))
		if (fail == nil) != want {
			t.Errorf("DispatchCall(%d) failure = %v, want call handler present = %v", op, fail, want)
		}
	}

	// A cleared opcode can be registered again, from scratch.
	r.On(1000, rec.raw("again"))
	mustDispatch(t, r, nil, 1000, `{}`)
	wantCalls(t, &rec, "again {}")
}

func TestClearAll(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(0, rec.raw("small"))
	r.On(1<<30, rec.raw("large"))
	r.OnCall(0, func(handler.Conn, []byte) (any, error) { return nil, nil })
	r.Forward(rec.forward("fwd"))
	r.ClearAll()

	for _, op := range []codec.Opcode{0, 1, 1 << 30} {
		mustDispatch(t, r, nil, op, `{}`)
		if r.Handles(op) {
			t.Errorf("Handles(%d) after ClearAll = true", op)
		}
	}
	if _, fail := r.DispatchCall(nil, 0, []byte(`{}`)); fail == nil || fail.Reason != handler.ReasonUnknownOpcode {
		t.Errorf("DispatchCall after ClearAll = %v, want UnknownOpcode", fail)
	}
	wantCalls(t, &rec)

	r.On(0, rec.raw("new"))
	mustDispatch(t, r, nil, 0, `{}`)
	wantCalls(t, &rec, "new {}")
}

func TestForwardSeesEveryApplicationOpcode(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.Forward(rec.forward("f1"))
	r.On(7, rec.raw("own7"))
	r.On(1000, rec.raw("own1000"))
	r.Forward(rec.forward("f2"))

	// The opcode's own callbacks first, then the catch-alls in the order
	// added, whether the opcode has callbacks of its own or not.
	mustDispatch(t, r, nil, 7, `{"a":1}`)
	wantCalls(t, &rec, `own7 {"a":1}`, `f1 op=7 {"a":1}`, `f2 op=7 {"a":1}`)
	mustDispatch(t, r, nil, 1000, `{}`)
	wantCalls(t, &rec, `own1000 {}`, `f1 op=1000 {}`, `f2 op=1000 {}`)
	for _, op := range []codec.Opcode{0, 8, 255, 256, 1 << 30, math.MaxInt32} {
		mustDispatch(t, r, nil, op, `{}`)
		wantCalls(t, &rec, fmt.Sprintf("f1 op=%d {}", op), fmt.Sprintf("f2 op=%d {}", op))
		if !r.Handles(op) {
			t.Errorf("Handles(%d) = false with a catch-all registered", op)
		}
	}
}

// TestNegativeOpcodesNeverDispatched: with nothing registered for -1, no
// negative opcode reaches a callback, catch-alls included.
func TestNegativeOpcodesNeverDispatched(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	for op := codec.Opcode(0); op < 300; op++ {
		r.On(op, rec.raw("own"))
		r.OnCall(op, func(handler.Conn, []byte) (any, error) {
			rec.add("call")
			return nil, nil
		})
	}
	r.On(math.MaxInt32, rec.raw("max"))
	r.Forward(rec.forward("fwd"))

	negs := []codec.Opcode{codec.OpFailure, codec.OpMessageSize, codec.OpRequest, codec.OpReply,
		codec.OpReplyFailure, codec.OpPing, codec.OpPong, -8, -256, -1000, math.MinInt32}
	for _, op := range negs {
		if fail := r.Dispatch(&fakeConn{}, op, []byte(`{"reason":"x","message":"y"}`)); fail != nil {
			t.Errorf("Dispatch(%d) = %v, want nil", op, fail)
		}
		res, fail := r.DispatchCall(&fakeConn{}, op, []byte(`{}`))
		if res != nil || fail == nil || fail.Reason != handler.ReasonUnknownOpcode {
			t.Errorf("DispatchCall(%d) = %v, %v; want an UnknownOpcode failure", op, res, fail)
		}
		if r.Handles(op) {
			t.Errorf("Handles(%d) = true; negative opcodes are never dispatched", op)
		}
	}
	wantCalls(t, &rec)
}

func TestRegisteringInvalidCallbackPanics(t *testing.T) {
	t.Parallel()
	nop := func(handler.Conn, []byte) error { return nil }
	nopCall := func(handler.Conn, []byte) (any, error) { return nil, nil }
	type req struct{}
	tests := []struct {
		name string
		fn   func(r *handler.Router)
		want string
	}{
		{"On -2", func(r *handler.Router) { r.On(codec.OpMessageSize, nop) }, "reserved"},
		{"On -3", func(r *handler.Router) { r.On(codec.OpRequest, nop) }, "reserved"},
		{"On -8", func(r *handler.Router) { r.On(-8, nop) }, "reserved"},
		{"On -1 nil", func(r *handler.Router) { r.On(codec.OpFailure, nil) }, "nil callback"},
		{"On MinInt32", func(r *handler.Router) { r.On(math.MinInt32, nop) }, "reserved"},
		{"On nil", func(r *handler.Router) { r.On(0, nil) }, "nil callback"},
		{"OnCall negative", func(r *handler.Router) { r.OnCall(-3, nopCall) }, "reserved"},
		{"OnCall -1", func(r *handler.Router) { r.OnCall(codec.OpFailure, nopCall) }, "reserved"},
		{"OnCall nil", func(r *handler.Router) { r.OnCall(0, nil) }, "nil callback"},
		{"Forward nil", func(r *handler.Router) { r.Forward(nil) }, "nil callback"},
		{"Handle negative", func(r *handler.Router) {
			handler.Handle(r, -2, func(handler.Conn, req) error { return nil })
		}, "reserved"},
		{"Handle nil", func(r *handler.Router) { handler.Handle[req](r, 0, nil) }, "nil callback"},
		{"Handle -1 nil", func(r *handler.Router) { handler.Handle[handler.Error](r, -1, nil) }, "nil callback"},
		{"HandleCall negative", func(r *handler.Router) {
			handler.HandleCall(r, -1, func(handler.Conn, req) (req, error) { return req{}, nil })
		}, "reserved"},
		{"HandleCall nil", func(r *handler.Router) { handler.HandleCall[req, req](r, 0, nil) }, "nil callback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := handler.NewRouter()
			func() {
				defer func() {
					p := recover()
					msg, _ := p.(string)
					if !strings.HasPrefix(msg, "handler: ") || !strings.Contains(msg, tt.want) {
						t.Errorf("panic = %#v, want a string starting with \"handler: \" and containing %q", p, tt.want)
					}
				}()
				tt.fn(r)
			}()
			// Nothing was registered.
			for _, op := range []codec.Opcode{0, -1, -2, -3, math.MinInt32} {
				if r.Handles(op) {
					t.Errorf("Handles(%d) = true after a rejected registration", op)
				}
			}
		})
	}
}

func TestUnknownOpcodeIsDropped(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(1, rec.raw("one"))
	r.On(1000, rec.raw("thousand"))
	for _, op := range []codec.Opcode{0, 2, 255, 256, 999, 1001, 1 << 30, math.MaxInt32} {
		if fail := r.Dispatch(&fakeConn{}, op, []byte(`{}`)); fail != nil {
			t.Errorf("Dispatch(%d) = %v, want nil (dropped)", op, fail)
		}
		if r.Handles(op) {
			t.Errorf("Handles(%d) = true", op)
		}
		res, fail := r.DispatchCall(nil, op, []byte(`{}`))
		want := fmt.Sprintf("No call handler for opcode %d", op)
		if res != nil || fail == nil || fail.Reason != handler.ReasonUnknownOpcode || fail.Message != want {
			t.Errorf("DispatchCall(%d) = %v, %#v; want UnknownOpcode %q", op, res, fail, want)
		}
	}
	wantCalls(t, &rec)
}

func TestZeroRouter(t *testing.T) {
	t.Parallel()
	var r handler.Router
	if fail := r.Dispatch(nil, 0, []byte(`{}`)); fail != nil {
		t.Errorf("zero Router Dispatch = %v, want nil", fail)
	}
	if _, fail := r.DispatchCall(nil, 0, []byte(`{}`)); fail == nil || fail.Reason != handler.ReasonUnknownOpcode {
		t.Errorf("zero Router DispatchCall = %v, want UnknownOpcode", fail)
	}
	if r.Handles(0) {
		t.Error("zero Router Handles(0) = true")
	}
	r.Clear(0)
	r.ClearAll()
	var rec recorder
	r.On(0, rec.raw("zero"))
	mustDispatch(t, &r, nil, 0, `{}`)
	wantCalls(t, &rec, "zero {}")
}

// TestOpcodeRanges routes opcodes on both sides of the dense table's bound
// (small opcodes are served from a slice, the others from a map) and clears
// them one at a time.
func TestOpcodeRanges(t *testing.T) {
	t.Parallel()
	ops := []codec.Opcode{0, 1, 100, 254, 255, 256, 257, 1000, 65535, 1 << 20, 1 << 30, math.MaxInt32}
	var rec recorder
	r := handler.NewRouter()
	for _, op := range ops {
		r.On(op, rec.raw(fmt.Sprint(op)))
		r.OnCall(op, func(_ handler.Conn, data []byte) (any, error) {
			return map[string]any{"op": op, "data": string(data)}, nil
		})
	}
	for i, op := range ops {
		for _, o := range ops[i:] {
			mustDispatch(t, r, nil, o, `{}`)
			wantCalls(t, &rec, fmt.Sprint(o)+" {}")
			res, fail := r.DispatchCall(nil, o, []byte(`{"x":1}`))
			if fail != nil || !reflect.DeepEqual(res, map[string]any{"op": o, "data": `{"x":1}`}) {
				t.Fatalf("DispatchCall(%d) = %v, %v", o, res, fail)
			}
		}
		for _, o := range ops[:i] {
			mustDispatch(t, r, nil, o, `{}`)
			wantCalls(t, &rec)
		}
		r.Clear(op)
		if r.Handles(op) {
			t.Fatalf("Handles(%d) after Clear = true", op)
		}
	}
	// Opcodes between registered ones were never routed.
	for _, op := range []codec.Opcode{2, 253, 258, 1001, 1<<30 + 1} {
		mustDispatch(t, r, nil, op, `{}`)
	}
	wantCalls(t, &rec)
}

func TestOnCall(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(2, rec.raw("oneway"))
	r.OnCall(2, func(handler.Conn, []byte) (any, error) { return "old", nil })
	r.OnCall(2, func(_ handler.Conn, data []byte) (any, error) {
		rec.add("call %s", data)
		return map[string]int{"n": len(data)}, nil
	})

	// One-way frames go to On's callbacks, calls to the (latest) call
	// handler, and neither runs the other.
	mustDispatch(t, r, nil, 2, `{"a":1}`)
	wantCalls(t, &rec, `oneway {"a":1}`)
	res, fail := r.DispatchCall(nil, 2, []byte(`{"a":1}`))
	if fail != nil || !reflect.DeepEqual(res, map[string]int{"n": 7}) {
		t.Fatalf("DispatchCall = %v, %v", res, fail)
	}
	wantCalls(t, &rec, `call {"a":1}`)

	// A call handler alone makes the opcode handled, and On keeps it.
	r.OnCall(3, func(handler.Conn, []byte) (any, error) { return nil, nil })
	if !r.Handles(3) {
		t.Error("Handles(3) = false with a call handler")
	}
	mustDispatch(t, r, nil, 3, `{}`)
	r.On(3, rec.raw("three"))
	if res, fail := r.DispatchCall(nil, 3, []byte(`{}`)); res != nil || fail != nil {
		t.Errorf("DispatchCall(3) after On = %v, %v; want nil, nil", res, fail)
	}
	mustDispatch(t, r, nil, 3, `{}`)
	wantCalls(t, &rec, "three {}")

	// Errors from a call handler are failures.
	r.OnCall(4, func(handler.Conn, []byte) (any, error) {
		return "ignored", handler.ArgumentTypeError("want a number")
	})
	res, fail = r.DispatchCall(nil, 4, []byte(`{}`))
	if res != nil || fail == nil || fail.Reason != handler.ReasonArgumentTypeError || fail.Message != "want a number" {
		t.Errorf("DispatchCall(4) = %v, %#v", res, fail)
	}
}

// TestDispatchWhileRegistering runs Dispatch from several goroutines while
// another one registers and clears callbacks. Under -race it proves the read
// path needs no lock; the assertions prove every dispatch saw one consistent
// table: the stable opcode always ran its one callback exactly once, and a
// churned opcode ran a prefix of the callbacks added to it, in order.
func TestDispatchWhileRegistering(t *testing.T) {
	t.Parallel()
	const (
		stableOp   = 0
		denseOp    = 1
		sparseOp   = 1000
		iterations = 2000
		maxTime    = 200 * time.Millisecond
	)
	readers := max(2, runtime.GOMAXPROCS(0))

	// Each reader has its own conn; callbacks record into it, so a reader
	// sees exactly what its own Dispatch ran (and the race detector checks
	// that no callback runs on another goroutine).
	type readerConn struct {
		fakeConn
		stable int
		seq    []byte
	}
	r := handler.NewRouter()
	r.On(stableOp, func(c handler.Conn, _ []byte) error {
		c.(*readerConn).stable++
		return nil
	})
	mark := func(b byte) handler.Func {
		return func(c handler.Conn, _ []byte) error {
			rc := c.(*readerConn)
			rc.seq = append(rc.seq, b)
			return nil
		}
	}
	fwd := func(c handler.Conn, op codec.Opcode, _ []byte) error {
		if op == denseOp || op == sparseOp {
			rc := c.(*readerConn)
			rc.seq = append(rc.seq, 'F')
		}
		return nil
	}

	var (
		stop       atomic.Bool
		dispatches atomic.Int64
		churned    atomic.Int64 // dispatches that ran some of "ABC"
		started    sync.WaitGroup
		wg         sync.WaitGroup
	)
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			c := &readerConn{}
			// Catch-alls are only ever added, so the number a reader sees
			// never decreases.
			lastF := 0
			for !stop.Load() {
				before := c.stable
				if fail := r.Dispatch(c, stableOp, []byte(`{}`)); fail != nil {
					errs <- fmt.Errorf("stable dispatch failed: %v", fail)
					return
				}
				if c.stable != before+1 {
					errs <- fmt.Errorf("stable callback ran %d times in one dispatch", c.stable-before)
					return
				}
				for _, op := range []codec.Opcode{denseOp, sparseOp} {
					c.seq = c.seq[:0]
					if fail := r.Dispatch(c, op, []byte(`{}`)); fail != nil {
						errs <- fmt.Errorf("dispatch %d failed: %v", op, fail)
						return
					}
					// A snapshot runs a prefix of "ABC", then the catch-alls.
					own := strings.TrimRight(string(c.seq), "F")
					nF := len(c.seq) - len(own)
					if !strings.HasPrefix("ABC", own) || nF < lastF {
						errs <- fmt.Errorf("dispatch %d ran %q after seeing %d catch-alls: not a snapshot of the table",
							op, c.seq, lastF)
						return
					}
					lastF = nF
					if own != "" {
						churned.Add(1)
					}
				}
				dispatches.Add(3)
			}
		}()
	}

	started.Wait()
	forwards := 0
	deadline := time.Now().Add(maxTime)
	for i := 0; i < iterations && time.Now().Before(deadline); i++ {
		for _, op := range []codec.Opcode{denseOp, sparseOp} {
			r.On(op, mark('A'))
			r.On(op, mark('B'))
			r.On(op, mark('C'))
		}
		if i%64 == 0 {
			r.Forward(fwd)
			forwards++
		}
		r.Clear(denseOp)
		r.Clear(sparseOp)
	}
	// Final state.
	r.On(denseOp, mark('A'))
	r.On(denseOp, mark('B'))
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if dispatches.Load() == 0 {
		t.Fatal("readers made no dispatches")
	}
	t.Logf("%d dispatches by %d readers, %d of them during a change", dispatches.Load(), readers, churned.Load())

	// After the writer stops, every dispatch sees the final table: A and B
	// then every catch-all for the dense opcode, only the catch-alls for the
	// cleared sparse one.
	c := &readerConn{}
	mustDispatch(t, r, c, denseOp, `{}`)
	if got, want := string(c.seq), "AB"+strings.Repeat("F", forwards); got != want {
		t.Errorf("final dense dispatch ran %q, want %q", got, want)
	}
	c.seq = nil
	mustDispatch(t, r, c, sparseOp, `{}`)
	if got, want := string(c.seq), strings.Repeat("F", forwards); got != want {
		t.Errorf("final sparse dispatch ran %q, want %q", got, want)
	}
	mustDispatch(t, r, c, stableOp, `{}`)
	if c.stable != 1 {
		t.Errorf("stable callback ran %d times, want 1", c.stable)
	}
}
