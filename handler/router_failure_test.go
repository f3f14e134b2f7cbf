// Tests of failure frames (-1) reaching the router's failure callbacks,
// and of the errors those callbacks return.

package handler_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// TestFailureCallbacks covers callbacks for -1 failure frames, the
// original's msg.on(-1, fn): raw and typed ones run in order with the
// frame's object, catch-alls do not see the frame, and nothing they do is
// returned as a failure to send.
func TestFailureCallbacks(t *testing.T) {
	t.Parallel()
	var rec recorder
	r, logs := newLoggedRouter()
	r.Forward(rec.forward("fwd"))
	if r.Handles(codec.OpFailure) {
		t.Fatal("Handles(-1) = true with only a catch-all")
	}
	r.On(codec.OpFailure, rec.raw("raw"))
	handler.Handle(r, codec.OpFailure, func(_ handler.Conn, f handler.Error) error {
		rec.add("value %s %q", f.Reason, f.Message)
		return nil
	})
	handler.Handle(r, codec.OpFailure, func(c handler.Conn, f *handler.Error) error {
		rec.add("pointer %d %s", c.ID(), f.Error())
		// The typed failures are one FromWire away.
		var am handler.ArgumentMissing
		if err := handler.FromWire(f.Reason, f.Message); errors.As(err, &am) {
			rec.add("missing %s", am)
		}
		return nil
	})
	if !r.Handles(codec.OpFailure) {
		t.Fatal("Handles(-1) = false with failure callbacks")
	}
	for _, op := range []codec.Opcode{codec.OpMessageSize, codec.OpRequest, -8} {
		if r.Handles(op) {
			t.Errorf("Handles(%d) = true", op)
		}
	}

	data := `{"reason":"ArgumentMissing","message":"Expected argument 'b' in opcode 1"}`
	mustDispatch(t, r, &fakeConn{id: 3}, codec.OpFailure, data)
	wantCalls(t, &rec, "raw "+data,
		`value ArgumentMissing "Expected argument 'b' in opcode 1"`,
		"pointer 3 ArgumentMissing: Expected argument 'b' in opcode 1",
		"missing Expected argument 'b' in opcode 1")
	// The original's spaced form, unknown members, a missing message.
	mustDispatch(t, r, &fakeConn{}, codec.OpFailure, `{"reason": "Teapot", "extra": [1], "code": 4}`)
	wantCalls(t, &rec, `raw {"reason": "Teapot", "extra": [1], "code": 4}`,
		`value Teapot ""`, "pointer 0 Teapot")
	// The application frames still reach the catch-all, and no failure
	// callback runs for them or for other negative opcodes.
	mustDispatch(t, r, nil, 1, `{}`)
	wantCalls(t, &rec, "fwd op=1 {}")
	mustDispatch(t, r, nil, codec.OpReplyFailure, data)
	wantCalls(t, &rec)
	if _, fail := r.DispatchCall(nil, codec.OpFailure, []byte(data)); fail == nil || fail.Reason != handler.ReasonUnknownOpcode {
		t.Errorf("DispatchCall(-1) = %v, want UnknownOpcode", fail)
	}
	if recs := logs.records(t); len(recs) != 0 {
		t.Errorf("logged %v", recs)
	}

	// Clear removes the failure callbacks, and them alone.
	r.On(0, rec.raw("zero"))
	r.Clear(codec.OpFailure)
	if r.Handles(codec.OpFailure) {
		t.Error("Handles(-1) after Clear(-1) = true")
	}
	mustDispatch(t, r, nil, codec.OpFailure, data)
	wantCalls(t, &rec)
	mustDispatch(t, r, nil, 0, `{}`)
	wantCalls(t, &rec, "zero {}", "fwd op=0 {}")
	r.On(codec.OpFailure, rec.raw("again"))
	r.ClearAll()
	if r.Handles(codec.OpFailure) {
		t.Error("Handles(-1) after ClearAll = true")
	}
}

// TestFailureCallbackErrorsAreLogged: an error, a decoding failure or a
// panic in a failure callback stops the later ones and is logged once,
// whatever reason it names; Dispatch returns nil, so the engine never
// answers a failure with a failure.
func TestFailureCallbackErrorsAreLogged(t *testing.T) {
	t.Parallel()
	plain := errors.New("cannot record the failure")
	for _, tt := range []struct {
		name string
		data string
		fn   handler.Func
		err  string // the logged error, or "" for a panic
	}{
		{"plain error", `{"reason":"R","message":"m"}`, returning(plain), "cannot record the failure"},
		{"reason error", `{"reason":"R","message":"m"}`, returning(handler.ArgumentValueError("no")), "no"},
		{"*Error", `{"reason":"R","message":"m"}`, returning(&handler.Error{Reason: "Loop", Message: "m"}), "Loop: m"},
		{"panic", `{"reason":"R","message":"m"}`, func(handler.Conn, []byte) error { panic("failure boom") }, ""},
	} {
		for _, errorText := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/errorText=%v", tt.name, errorText), func(t *testing.T) {
				var rec recorder
				r, logs := newLoggedRouter(handler.WithErrorText(errorText))
				r.On(codec.OpFailure, rec.raw("first"))
				r.On(codec.OpFailure, tt.fn)
				r.On(codec.OpFailure, rec.raw("never"))
				if fail := r.Dispatch(&fakeConn{id: 4}, codec.OpFailure, []byte(tt.data)); fail != nil {
					t.Fatalf("Dispatch(-1) = %#v, want nil", fail)
				}
				wantCalls(t, &rec, "first "+tt.data)
				recs := logs.records(t)
				if len(recs) != 1 {
					t.Fatalf("logged %d records, want 1: %v", len(recs), recs)
				}
				rec0 := recs[0]
				if rec0["level"] != "ERROR" || rec0["op"] != -1.0 || rec0["conn"] != 4.0 {
					t.Errorf("log record = %v", rec0)
				}
				if tt.err == "" {
					if rec0["msg"] != "simplerpc: callback panicked" || rec0["panic"] != "failure boom" {
						t.Errorf("log record = %v", rec0)
					}
				} else if rec0["msg"] != "simplerpc: callback failed" || rec0["err"] != tt.err {
					t.Errorf("log record = %v", rec0)
				}
			})
		}
	}

	// A typed failure callback whose frame does not decode: logged.
	r, logs := newLoggedRouter()
	called := false
	handler.Handle(r, codec.OpFailure, func(handler.Conn, handler.Error) error { called = true; return nil })
	if fail := r.Dispatch(nil, codec.OpFailure, []byte(`{"reason":5,"message":"m"}`)); fail != nil {
		t.Fatalf("Dispatch(-1) = %#v, want nil", fail)
	}
	if called {
		t.Error("typed failure callback ran on a reason of the wrong type")
	}
	if recs := logs.records(t); len(recs) != 1 || recs[0]["msg"] != "simplerpc: callback failed" ||
		!strings.Contains(recs[0]["err"].(string), "reason") {
		t.Errorf("logged %v", recs)
	}
	// Without a logger: nothing at all.
	quiet := handler.NewRouter()
	quiet.On(codec.OpFailure, returning(plain))
	if fail := quiet.Dispatch(nil, codec.OpFailure, []byte(`{}`)); fail != nil {
		t.Errorf("quiet Dispatch(-1) = %#v", fail)
	}
}
