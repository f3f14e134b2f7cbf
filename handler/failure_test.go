package handler_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// logBuffer is an io.Writer for a slog.JSONHandler whose records a test
// reads back.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON records logged so far, and forgets them.
func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var recs []map[string]any
	dec := json.NewDecoder(&b.buf)
	for {
		var rec map[string]any
		if err := dec.Decode(&rec); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("bad log record: %v", err)
		}
		recs = append(recs, rec)
	}
	b.buf.Reset()
	return recs
}

// newLoggedRouter returns a router with opts that logs into the returned
// buffer.
func newLoggedRouter(opts ...handler.RouterOption) (*handler.Router, *logBuffer) {
	lb := new(logBuffer)
	opts = append([]handler.RouterOption{handler.WithLogger(slog.New(slog.NewJSONHandler(lb, nil)))}, opts...)
	return handler.NewRouter(opts...), lb
}

// reasonError is an application error type naming its own reason.
type reasonError struct{ code int }

func (e *reasonError) Error() string  { return fmt.Sprintf("quota exceeded (%d)", e.code) }
func (e *reasonError) Reason() string { return "QuotaExceeded" }

func returning(err error) handler.Func {
	return func(handler.Conn, []byte) error { return err }
}

func TestDispatchTypedFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err     error
		reason  string
		message string
		as      func(error) bool // errors.As on the failure finds the original
	}{
		{handler.ArgumentTypeError("type"), handler.ReasonArgumentTypeError, "type",
			func(err error) bool { var e handler.ArgumentTypeError; return errors.As(err, &e) && e == "type" }},
		{handler.ArgumentValueError("value"), handler.ReasonArgumentValueError, "value",
			func(err error) bool { var e handler.ArgumentValueError; return errors.As(err, &e) && e == "value" }},
		{handler.ArgumentMissing("Expected argument 'argname' in opcode 0"), handler.ReasonArgumentMissing,
			"Expected argument 'argname' in opcode 0",
			func(err error) bool { var e handler.ArgumentMissing; return errors.As(err, &e) }},
		{handler.MalformedPayload("bad"), handler.ReasonMalformedPayload, "bad",
			func(err error) bool { var e handler.MalformedPayload; return errors.As(err, &e) && e == "bad" }},
		{&reasonError{7}, "QuotaExceeded", "quota exceeded (7)",
			func(err error) bool { var e *reasonError; return errors.As(err, &e) && e.code == 7 }},
		// Wrapped failures are found, and the message is the failure's own.
		{fmt.Errorf("x: %w", handler.ArgumentMissing("need a")), handler.ReasonArgumentMissing, "need a",
			func(err error) bool { var e handler.ArgumentMissing; return errors.As(err, &e) && e == "need a" }},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", &reasonError{1})), "QuotaExceeded", "quota exceeded (1)",
			func(err error) bool { var e *reasonError; return errors.As(err, &e) }},
		{&codec.MalformedError{Message: "JSON malformed for opcode: 3"}, handler.ReasonMalformedPayload,
			"JSON malformed for opcode: 3",
			func(err error) bool { return errors.Is(err, codec.ErrMalformed) }},
		{fmt.Errorf("decode: %w", &codec.TypeError{Field: "a", Value: "string"}), handler.ReasonArgumentTypeError,
			`codec: argument "a": unexpected JSON string`,
			func(err error) bool { var e *codec.TypeError; return errors.As(err, &e) && e.Field == "a" }},
	}
	for _, tt := range tests {
		for _, errorText := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/errorText=%v", tt.reason, tt.message, errorText), func(t *testing.T) {
				// Errors that name their reason send their own text under
				// either setting.
				r, logs := newLoggedRouter(handler.WithErrorText(errorText))
				r.On(1, returning(tt.err))
				fail := r.Dispatch(&fakeConn{id: 9}, 1, []byte(`{}`))
				if fail == nil || fail.Reason != tt.reason || fail.Message != tt.message {
					t.Fatalf("Dispatch = %#v, want %s %q", fail, tt.reason, tt.message)
				}
				if got := handler.ReasonOf(fail); got != tt.reason {
					t.Errorf("ReasonOf(failure) = %q, want %q", got, tt.reason)
				}
				if !errors.Is(fail, tt.err) {
					t.Errorf("errors.Is(failure, returned error) = false")
				}
				if !tt.as(fail) {
					t.Errorf("errors.As(failure, original type) = false")
				}
				if got := fail.Error(); got != tt.reason+": "+tt.message {
					t.Errorf("Error() = %q", got)
				}
				// Failures that name a reason are the peer's business: not logged.
				if recs := logs.records(t); len(recs) != 0 {
					t.Errorf("logged %v", recs)
				}

				// The same through DispatchCall and Failure.
				r.OnCall(1, func(handler.Conn, []byte) (any, error) { return nil, tt.err })
				if _, fail := r.DispatchCall(nil, 1, []byte(`{}`)); fail == nil || fail.Reason != tt.reason || fail.Message != tt.message {
					t.Errorf("DispatchCall = %#v", fail)
				}
				if f := handler.Failure(tt.err); f.Reason != tt.reason || f.Message != tt.message || !errors.Is(f, tt.err) {
					t.Errorf("Failure = %#v", f)
				}
			})
		}
	}
}

func TestDispatchReturnsErrorAsIs(t *testing.T) {
	t.Parallel()
	want := &handler.Error{Reason: "Custom", Message: "as sent"}
	r, logs := newLoggedRouter()
	r.On(1, returning(want))
	r.On(2, returning(fmt.Errorf("wrapped: %w", want)))
	for _, op := range []codec.Opcode{1, 2} {
		if fail := r.Dispatch(nil, op, []byte(`{}`)); fail != want {
			t.Errorf("Dispatch(%d) = %#v, want the returned *Error itself", op, fail)
		}
	}
	if errors.Unwrap(want) != nil {
		t.Errorf("Unwrap of an application *Error = %v, want nil", errors.Unwrap(want))
	}
	if recs := logs.records(t); len(recs) != 0 {
		t.Errorf("logged %v", recs)
	}
}

// dbError is an application error type that names no reason: its text is
// detail for the logs.
type dbError struct{ addr string }

func (e *dbError) Error() string { return "database at " + e.addr + " is down" }

func TestDispatchPlainErrorIsInternalAndLogged(t *testing.T) {
	t.Parallel()
	plain := &dbError{addr: "10.0.0.5:5432"}
	for _, tt := range []struct {
		name      string
		opts      []handler.RouterOption
		own, fwd  string // the messages sent for the opcode's callback and the catch-all's
		errorText bool
	}{
		{"default", nil, "internal error", "internal error", false},
		{"WithErrorText(false)", []handler.RouterOption{handler.WithErrorText(false)},
			"internal error", "internal error", false},
		{"WithErrorText(true)", []handler.RouterOption{handler.WithErrorText(true)},
			"database at 10.0.0.5:5432 is down", "forward: database at 10.0.0.5:5432 is down", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, lb := newLoggedRouter(tt.opts...)
			r.On(12, returning(plain))
			r.Forward(func(handler.Conn, codec.Opcode, []byte) error { return fmt.Errorf("forward: %w", plain) })
			r.OnCall(12, func(handler.Conn, []byte) (any, error) { return "ignored", fmt.Errorf("query: %w", plain) })

			fail := r.Dispatch(&fakeConn{id: 77}, 12, []byte(`{}`))
			if fail == nil || fail.Reason != handler.ReasonInternal || fail.Message != tt.own {
				t.Fatalf("Dispatch = %#v, want InternalError %q", fail, tt.own)
			}
			// The local cause stays reachable, for logs, whatever is sent.
			var de *dbError
			if !errors.Is(fail, plain) || !errors.As(fail, &de) || de != plain || errors.Unwrap(fail) != error(plain) {
				t.Error("the failure does not wrap the callback's error")
			}
			if handler.ReasonOf(fail) != handler.ReasonInternal || handler.ReasonOf(plain) != "" {
				t.Errorf("ReasonOf: %q, %q", handler.ReasonOf(fail), handler.ReasonOf(plain))
			}
			b, err := json.Marshal(fail)
			if want := `{"reason":"InternalError","message":"` + tt.own + `"}`; err != nil || string(b) != want {
				t.Errorf("wire form %s, %v; want %s", b, err, want)
			}
			if !tt.errorText && strings.Contains(string(b), "10.0.0.5") {
				t.Errorf("wire form %s carries the error's detail", b)
			}
			// Exactly one record per failure, with the whole text.
			recs := lb.records(t)
			if len(recs) != 1 {
				t.Fatalf("logged %d records, want 1: %v", len(recs), recs)
			}
			rec := recs[0]
			if rec["level"] != "ERROR" || rec["msg"] != "simplerpc: callback failed" || rec["op"] != 12.0 ||
				rec["conn"] != 77.0 || rec["err"] != "database at 10.0.0.5:5432 is down" {
				t.Errorf("log record = %v", rec)
			}

			// From a catch-all, the wrapped error the same way.
			fail = r.Dispatch(nil, 13, []byte(`{}`))
			if fail == nil || fail.Reason != handler.ReasonInternal || fail.Message != tt.fwd || !errors.As(fail, &de) {
				t.Errorf("catch-all Dispatch = %#v, want InternalError %q wrapping the cause", fail, tt.fwd)
			}
			if recs := lb.records(t); len(recs) != 1 || recs[0]["conn"] != 0.0 || recs[0]["op"] != 13.0 ||
				recs[0]["err"] != "forward: database at 10.0.0.5:5432 is down" {
				t.Errorf("catch-all log = %v", recs)
			}

			// From a call handler.
			res, fail := r.DispatchCall(&fakeConn{id: 78}, 12, []byte(`{}`))
			want := "internal error"
			if tt.errorText {
				want = "query: database at 10.0.0.5:5432 is down"
			}
			if res != nil || fail == nil || fail.Reason != handler.ReasonInternal || fail.Message != want || !errors.Is(fail, plain) {
				t.Errorf("DispatchCall = %v, %#v; want InternalError %q wrapping the cause", res, fail, want)
			}
			if recs := lb.records(t); len(recs) != 1 || recs[0]["conn"] != 78.0 ||
				recs[0]["err"] != "query: database at 10.0.0.5:5432 is down" {
				t.Errorf("DispatchCall log = %v", recs)
			}

			// A panic sends the generic message under either setting.
			r.On(14, func(handler.Conn, []byte) error { panic("secret 10.0.0.5") })
			if fail := r.Dispatch(nil, 14, []byte(`{}`)); fail == nil || fail.Message != "internal error" {
				t.Errorf("panic: %#v", fail)
			}
			if recs := lb.records(t); len(recs) != 1 {
				t.Errorf("panic logged %d records, want 1", len(recs))
			}
		})
	}

	// Without a logger: the same failure, nothing else.
	quiet := handler.NewRouter()
	quiet.On(1, returning(plain))
	if fail := quiet.Dispatch(nil, 1, []byte(`{}`)); fail == nil || fail.Reason != handler.ReasonInternal ||
		fail.Message != "internal error" || !errors.Is(fail, plain) {
		t.Errorf("quiet Dispatch = %#v", fail)
	}
	// A zero Router has the defaults.
	var zero handler.Router
	zero.On(1, returning(plain))
	if fail := zero.Dispatch(nil, 1, []byte(`{}`)); fail == nil || fail.Message != "internal error" {
		t.Errorf("zero Router Dispatch = %#v", fail)
	}
}

func TestDispatchRecoversPanics(t *testing.T) {
	t.Parallel()
	r, logs := newLoggedRouter()
	var after recorder
	r.On(1, func(handler.Conn, []byte) error { panic("boom") })
	r.On(1, after.raw("after")) // not reached
	r.On(2, after.raw("two"))
	r.Forward(func(_ handler.Conn, op codec.Opcode, _ []byte) error {
		if op == 3 {
			var m map[string]int
			//lint:ignore SA5000 the test wants a runtime panic
			m["x"] = 1
		}
		return nil
	})
	r.OnCall(4, func(handler.Conn, []byte) (any, error) { panic(errors.New("call boom")) })
	handler.Handle(r, 5, func(handler.Conn, move) error { panic("typed boom") })

	for _, tt := range []struct {
		op    codec.Opcode
		call  bool
		panic string
	}{
		{1, false, "boom"},
		{3, false, "assignment to entry in nil map"},
		{4, true, "call boom"},
		{5, false, "typed boom"},
	} {
		var fail *handler.Error
		if tt.call {
			var res any
			res, fail = r.DispatchCall(&fakeConn{id: 5}, tt.op, []byte(`{"x":1,"y":1}`))
			if res != nil {
				t.Errorf("op %d: DispatchCall result %v after a panic", tt.op, res)
			}
		} else {
			fail = r.Dispatch(&fakeConn{id: 5}, tt.op, []byte(`{"x":1,"y":1}`))
		}
		if fail == nil || fail.Reason != handler.ReasonInternal || fail.Message != "internal error" {
			t.Fatalf("op %d: failure %#v, want InternalError \"internal error\"", tt.op, fail)
		}
		if cause := errors.Unwrap(fail); cause == nil || !strings.Contains(cause.Error(), tt.panic) {
			t.Errorf("op %d: cause %v, want the panic value", tt.op, cause)
		}
		recs := logs.records(t)
		if len(recs) != 1 {
			t.Fatalf("op %d: logged %d records, want 1", tt.op, len(recs))
		}
		rec := recs[0]
		stack, _ := rec["stack"].(string)
		if rec["level"] != "ERROR" || rec["msg"] != "simplerpc: callback panicked" ||
			rec["op"] != float64(tt.op) || rec["conn"] != 5.0 || !strings.Contains(rec["panic"].(string), tt.panic) ||
			!strings.Contains(stack, "goroutine ") || !strings.Contains(stack, "handler_test.TestDispatchRecoversPanics") {
			t.Errorf("op %d: log record = %v", tt.op, rec)
		}
	}
	wantCalls(t, &after)

	// The router keeps working, on the same and on other opcodes.
	mustDispatch(t, r, nil, 2, `{}`)
	wantCalls(t, &after, "two {}")
	r.On(1<<20, after.raw("new"))
	mustDispatch(t, r, nil, 1<<20, `{}`)
	wantCalls(t, &after, "new {}")
	if fail := r.Dispatch(nil, 1, []byte(`{}`)); fail == nil || fail.Message != "internal error" {
		t.Errorf("second panic: %v", fail)
	}
	if recs := logs.records(t); len(recs) != 1 {
		t.Errorf("second panic logged %d records", len(recs))
	}
}

func TestFromWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reason string
		check  func(error) bool
	}{
		{handler.ReasonArgumentTypeError, func(err error) bool {
			var e handler.ArgumentTypeError
			return errors.As(err, &e) && e == "msg" && errors.Is(err, handler.ArgumentTypeError("msg"))
		}},
		{handler.ReasonArgumentValueError, func(err error) bool {
			var e handler.ArgumentValueError
			return errors.As(err, &e) && e == "msg" && errors.Is(err, handler.ArgumentValueError("msg"))
		}},
		{handler.ReasonArgumentMissing, func(err error) bool {
			var e handler.ArgumentMissing
			return errors.As(err, &e) && e == "msg" && errors.Is(err, handler.ArgumentMissing("msg"))
		}},
		{handler.ReasonMalformedPayload, func(err error) bool {
			var e handler.MalformedPayload
			return errors.As(err, &e) && e == "msg" && errors.Is(err, handler.MalformedPayload("msg"))
		}},
		{handler.ReasonInternal, func(err error) bool {
			var e *handler.Error
			return errors.As(err, &e) && e.Reason == handler.ReasonInternal && e.Message == "msg" && errors.Unwrap(e) == nil
		}},
		{"QuotaExceeded", func(err error) bool {
			var e *handler.Error
			return errors.As(err, &e) && e.Reason == "QuotaExceeded" && e.Message == "msg"
		}},
		{"", func(err error) bool {
			var e *handler.Error
			return errors.As(err, &e) && e.Reason == "" && e.Message == "msg"
		}},
	}
	for _, tt := range tests {
		err := handler.FromWire(tt.reason, "msg")
		if !tt.check(err) {
			t.Errorf("FromWire(%q) = %#v (%T)", tt.reason, err, err)
		}
		if got := handler.ReasonOf(err); got != tt.reason {
			t.Errorf("ReasonOf(FromWire(%q)) = %q", tt.reason, got)
		}
		// Wrapped by a transport layer, as the engine does.
		wrapped := fmt.Errorf("engine: call 3 to 10.0.0.2:7000: %w", err)
		if !tt.check(wrapped) || handler.ReasonOf(wrapped) != tt.reason {
			t.Errorf("wrapped FromWire(%q): checks fail", tt.reason)
		}
		// A failure read from the wire goes back out unchanged.
		if f := handler.Failure(err); f.Reason != tt.reason || f.Message != "msg" {
			t.Errorf("Failure(FromWire(%q)) = %#v", tt.reason, f)
		}
		// Typed failures do not match each other.
		if tt.reason != handler.ReasonArgumentMissing && errors.Is(err, handler.ArgumentMissing("msg")) {
			t.Errorf("FromWire(%q) matches ArgumentMissing", tt.reason)
		}
	}
}

func TestReasonOf(t *testing.T) {
	t.Parallel()
	_, _, malformed := codec.Decode([]byte(`1 {"a":`))
	var typeErr error
	{
		var v struct {
			A int `json:"a"`
		}
		typeErr = codec.Unmarshal([]byte(`{"a":"x"}`), &v)
	}
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("plain"), ""},
		{fmt.Errorf("wrapped: %w", errors.New("plain")), ""},
		{handler.ArgumentTypeError("m"), handler.ReasonArgumentTypeError},
		{handler.ArgumentValueError("m"), handler.ReasonArgumentValueError},
		{handler.ArgumentMissing("m"), handler.ReasonArgumentMissing},
		{handler.MalformedPayload("m"), handler.ReasonMalformedPayload},
		{fmt.Errorf("x: %w", handler.ArgumentMissing("m")), handler.ReasonArgumentMissing},
		{&handler.Error{Reason: "R", Message: "m"}, "R"},
		{fmt.Errorf("x: %w", &handler.Error{Reason: "R"}), "R"},
		{handler.Failure(errors.New("plain")), handler.ReasonInternal},
		{&reasonError{}, "QuotaExceeded"},
		{malformed, handler.ReasonMalformedPayload},
		{fmt.Errorf("engine: read: %w", malformed), handler.ReasonMalformedPayload},
		{typeErr, handler.ReasonArgumentTypeError},
		{errors.Join(errors.New("plain"), handler.ArgumentValueError("m")), handler.ReasonArgumentValueError},
	}
	for _, tt := range tests {
		if got := handler.ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%#v) = %q, want %q", tt.err, got, tt.want)
		}
	}
	var me *codec.MalformedError
	if !errors.As(malformed, &me) || !errors.Is(malformed, codec.ErrMalformed) {
		t.Fatalf("codec.Decode error %#v is not a *codec.MalformedError", malformed)
	}
	// A *codec.MalformedError returned by a callback goes out with its
	// Message, not its Error text.
	if f := handler.Failure(malformed); f.Reason != handler.ReasonMalformedPayload || f.Message != me.Message ||
		!errors.Is(f, codec.ErrMalformed) {
		t.Errorf("Failure(malformed) = %#v", f)
	}
}

func TestFailureNil(t *testing.T) {
	t.Parallel()
	if f := handler.Failure(nil); f != nil {
		t.Errorf("Failure(nil) = %#v, want nil", f)
	}
	e := &handler.Error{Reason: "R", Message: "m"}
	if f := handler.Failure(e); f != e {
		t.Errorf("Failure(*Error) = %p, want the same %p", f, e)
	}
	if got := e.Error(); got != "R: m" {
		t.Errorf("Error() = %q", got)
	}
	// The typed failures' text is the message alone.
	for _, err := range []error{handler.ArgumentTypeError("m"), handler.ArgumentValueError("m"),
		handler.ArgumentMissing("m"), handler.MalformedPayload("m")} {
		if err.Error() != "m" {
			t.Errorf("%T.Error() = %q, want %q", err, err.Error(), "m")
		}
		var r handler.Reasoner
		if !errors.As(err, &r) {
			t.Errorf("%T is not a handler.Reasoner", err)
		}
	}
	// The internal *Error keeps its cause, for the logs, but its wire form
	// is only reason and the generic message: Failure knows no router and
	// gives the default form.
	cause := &dbError{addr: "secret"}
	f := handler.Failure(fmt.Errorf("lookup: %w", cause))
	b, err := json.Marshal(f)
	if err != nil || string(b) != `{"reason":"InternalError","message":"internal error"}` {
		t.Errorf("json of internal failure = %s, %v", b, err)
	}
	var de *dbError
	if !errors.Is(f, cause) || !errors.As(f, &de) || de.addr != "secret" {
		t.Error("the internal failure does not wrap its cause")
	}
	if got := f.Error(); got != "InternalError: internal error" {
		t.Errorf("Error() = %q", got)
	}
}

// TestErrorTextWithoutParts: a failure read from the wire with no reason
// or no message (a -5 frame of a careless peer) reads as a sentence, not
// as a stray colon.
func TestErrorTextWithoutParts(t *testing.T) {
	for _, tc := range []struct{ reason, message, want string }{
		{"", "", "failure with no reason"},
		{"Teapot", "", "Teapot"},
		{"", "short and stout", "failure: short and stout"},
		{"Teapot", "short and stout", "Teapot: short and stout"},
	} {
		if got := handler.FromWire(tc.reason, tc.message).Error(); got != tc.want {
			t.Errorf("FromWire(%q, %q).Error() = %q, want %q", tc.reason, tc.message, got, tc.want)
		}
	}
}
