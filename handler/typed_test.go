package handler_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

type argReq struct {
	Argname string `json:"argname" simplerpc:"required"`
}

type move struct {
	X    int    `json:"x" simplerpc:"required"`
	Y    int    `json:"y" simplerpc:"required"`
	Name string `json:"name,omitempty"`
	Tags []int  `json:"tags"`
}

// positive validates with a value receiver, nonEmpty with a pointer one.
type positive struct {
	N int `json:"n" simplerpc:"required"`
}

func (p positive) Validate() error {
	if p.N <= 0 {
		return handler.ArgumentValueError("n must be positive")
	}
	return nil
}

type nonEmpty struct {
	S string `json:"s"`
}

func (p *nonEmpty) Validate() error {
	if p.S == "" {
		return handler.ArgumentValueError("s must not be empty")
	}
	return nil
}

// dispatchTyped dispatches data to a fresh typed callback for T and returns
// what the callback received and the failure.
func dispatchTyped[T any](t *testing.T, op codec.Opcode, data string) (got []T, fail *handler.Error) {
	t.Helper()
	r := handler.NewRouter()
	handler.Handle(r, op, func(_ handler.Conn, req T) error {
		got = append(got, req)
		return nil
	})
	return got, r.Dispatch(&fakeConn{}, op, []byte(data))
}

func TestHandleDecodes(t *testing.T) {
	t.Parallel()
	got, fail := dispatchTyped[move](t, 3, `{"x":1,"y":-2,"name":"knight","tags":[4,5]}`)
	if fail != nil {
		t.Fatal(fail)
	}
	want := []move{{X: 1, Y: -2, Name: "knight", Tags: []int{4, 5}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("callback got %+v, want %+v", got, want)
	}

	// Non-struct and pointer request types.
	gotMap, fail := dispatchTyped[map[string]any](t, 1, `{"a":"b"}`)
	if fail != nil || !reflect.DeepEqual(gotMap, []map[string]any{{"a": "b"}}) {
		t.Errorf("map request: %v, %v", gotMap, fail)
	}
	gotPtr, fail := dispatchTyped[*move](t, 1, `{"x":7,"y":8}`)
	if fail != nil || len(gotPtr) != 1 || !reflect.DeepEqual(*gotPtr[0], move{X: 7, Y: 8}) {
		t.Errorf("pointer request: %v, %v", gotPtr, fail)
	}
	if _, fail := dispatchTyped[*move](t, 1, `{"x":7}`); fail == nil || fail.Reason != handler.ReasonArgumentMissing {
		t.Errorf("pointer request without y: %v, want ArgumentMissing", fail)
	}
}

func TestHandleMissingArgument(t *testing.T) {
	t.Parallel()
	tests := []struct {
		data    string
		missing bool
		want    string // the decoded argument when not missing
	}{
		{`{}`, true, ""},
		{`{"other":1}`, true, ""},
		{`{"other":"argname"}`, true, ""},        // a value, not a key
		{`{"nested":{"argname":"v"}}`, true, ""}, // not at the top level
		{`{"list":["argname",{"argname":1}]}`, true, ""},
		{`{"argnam":"v","argnamex":"v"}`, true, ""}, // near misses
		{`{"argname":"v"}`, false, "v"},
		{`{"a":[1,{"b":2}],"argname":"v"}`, false, "v"},
		{`{"argname":""}`, false, ""},
		{`{"ARGNAME":"v"}`, false, "v"},      // go-json matches keys case-insensitively
		{`{"arg\u006eame":"v"}`, false, "v"}, // escaped key
		{`{"x\"y":1,"argname":"v"}`, false, "v"},
	}
	for _, tt := range tests {
		got, fail := dispatchTyped[argReq](t, 0, tt.data)
		if tt.missing {
			if fail == nil || fail.Reason != handler.ReasonArgumentMissing ||
				fail.Message != "Expected argument 'argname' in opcode 0" {
				t.Errorf("%s: failure %#v, want ArgumentMissing \"Expected argument 'argname' in opcode 0\"", tt.data, fail)
			}
			var am handler.ArgumentMissing
			if !errors.As(fail, &am) || string(am) != "Expected argument 'argname' in opcode 0" {
				t.Errorf("%s: errors.As(failure, *ArgumentMissing) = %q", tt.data, am)
			}
			if len(got) != 0 {
				t.Errorf("%s: callback called with %+v", tt.data, got)
			}
			continue
		}
		if fail != nil || len(got) != 1 || got[0].Argname != tt.want {
			t.Errorf("%s: callback got %+v, failure %v", tt.data, got, fail)
		}
	}

	// The opcode in the message is the registered one, and the first
	// missing field is named.
	_, fail := dispatchTyped[move](t, 1000, `{"y":1}`)
	if fail == nil || fail.Message != "Expected argument 'x' in opcode 1000" {
		t.Errorf("move without x: %v", fail)
	}
	_, fail = dispatchTyped[move](t, 1000, `{"x":1}`)
	if fail == nil || fail.Message != "Expected argument 'y' in opcode 1000" {
		t.Errorf("move without y: %v", fail)
	}
}

func TestHandleRequiredTagVariants(t *testing.T) {
	t.Parallel()
	type inner struct {
		Z int `json:"z" simplerpc:"required"`
	}
	type req struct {
		NoJSONTag int // not required
		Plain     int `simplerpc:"required"`          // JSON name is the field name
		Skipped   int `json:"-" simplerpc:"required"` // never in JSON: ignored
		hidden    int `simplerpc:"required"`          // unexported: ignored
		Opt       int `json:"opt,omitempty" simplerpc:"required"`
		Inner     inner
	}
	_ = req{}.hidden

	if _, fail := dispatchTyped[req](t, 2, `{"Plain":1,"opt":2}`); fail != nil {
		t.Errorf("all required present: %v", fail)
	}
	if _, fail := dispatchTyped[req](t, 2, `{"opt":2}`); fail == nil || fail.Message != "Expected argument 'Plain' in opcode 2" {
		t.Errorf("Plain missing: %v", fail)
	}
	if _, fail := dispatchTyped[req](t, 2, `{"Plain":1}`); fail == nil || fail.Message != "Expected argument 'opt' in opcode 2" {
		t.Errorf("opt missing: %v", fail)
	}
}

func TestHandleTypeError(t *testing.T) {
	t.Parallel()
	for _, data := range []string{`{"argname":5}`, `{"argname":{}}`, `{"argname":[1]}`, `{"argname":true}`} {
		got, fail := dispatchTyped[argReq](t, 0, data)
		if fail == nil || fail.Reason != handler.ReasonArgumentTypeError || !strings.Contains(fail.Message, "argname") ||
			!strings.HasSuffix(fail.Message, "in opcode 0") {
			t.Errorf("%s: failure %#v, want ArgumentTypeError naming argname", data, fail)
		}
		var te handler.ArgumentTypeError
		if !errors.As(fail, &te) {
			t.Errorf("%s: errors.As(failure, *ArgumentTypeError) = false", data)
		}
		if len(got) != 0 {
			t.Errorf("%s: callback called with %+v", data, got)
		}
	}
	_, fail := dispatchTyped[move](t, 9, `{"x":1,"y":2,"tags":["a"]}`)
	if fail == nil || fail.Reason != handler.ReasonArgumentTypeError {
		t.Errorf("tags of strings: %v, want ArgumentTypeError", fail)
	}
}

func TestHandleMalformedObject(t *testing.T) {
	t.Parallel()
	// The engine only dispatches objects codec.Decode accepted; a caller of
	// Dispatch that does not still gets a failure, not a panic.
	got, fail := dispatchTyped[map[string]any](t, 4, `{"a":`)
	if fail == nil || fail.Reason != handler.ReasonMalformedPayload || fail.Message != "JSON malformed for opcode: 4" {
		t.Errorf("failure %#v, want MalformedPayload", fail)
	}
	var mp handler.MalformedPayload
	if !errors.As(fail, &mp) {
		t.Error("errors.As(failure, *MalformedPayload) = false")
	}
	if len(got) != 0 {
		t.Errorf("callback called with %v", got)
	}
}

func TestHandleUnmarshalerError(t *testing.T) {
	t.Parallel()
	// A field whose own UnmarshalJSON rejects the value: the value is bad,
	// not its JSON type.
	type req struct {
		At time.Time `json:"at"`
	}
	got, fail := dispatchTyped[req](t, 8, `{"at":"yesterday"}`)
	if fail == nil || fail.Reason != handler.ReasonArgumentValueError ||
		!strings.HasPrefix(fail.Message, "Cannot decode opcode 8: ") || !strings.Contains(fail.Message, "yesterday") {
		t.Errorf("failure %#v, want ArgumentValueError", fail)
	}
	var ve handler.ArgumentValueError
	if !errors.As(fail, &ve) {
		t.Error("errors.As(failure, *ArgumentValueError) = false")
	}
	if len(got) != 0 {
		t.Errorf("callback called with %v", got)
	}
	if got, fail := dispatchTyped[req](t, 8, `{"at":"2024-01-02T03:04:05Z"}`); fail != nil || len(got) != 1 || got[0].At.Year() != 2024 {
		t.Errorf("valid time: %v, %v", got, fail)
	}
}

func TestHandleValidator(t *testing.T) {
	t.Parallel()
	got, fail := dispatchTyped[positive](t, 5, `{"n":0}`)
	if fail == nil || fail.Reason != handler.ReasonArgumentValueError || fail.Message != "n must be positive" {
		t.Errorf("value receiver: failure %#v, want ArgumentValueError", fail)
	}
	var ve handler.ArgumentValueError
	if !errors.As(fail, &ve) || ve != "n must be positive" {
		t.Errorf("errors.As(failure, *ArgumentValueError) = %q", ve)
	}
	if len(got) != 0 {
		t.Errorf("callback called with %+v", got)
	}
	if got, fail := dispatchTyped[positive](t, 5, `{"n":3}`); fail != nil || !reflect.DeepEqual(got, []positive{{3}}) {
		t.Errorf("valid: %v, %v", got, fail)
	}
	// Required fields are checked before Validate.
	if _, fail := dispatchTyped[positive](t, 5, `{}`); fail == nil || fail.Reason != handler.ReasonArgumentMissing {
		t.Errorf("missing n: %v, want ArgumentMissing", fail)
	}

	gotNE, fail := dispatchTyped[nonEmpty](t, 6, `{"s":""}`)
	if fail == nil || fail.Reason != handler.ReasonArgumentValueError || fail.Message != "s must not be empty" {
		t.Errorf("pointer receiver: failure %#v, want ArgumentValueError", fail)
	}
	if len(gotNE) != 0 {
		t.Errorf("callback called with %+v", gotNE)
	}
	if got, fail := dispatchTyped[nonEmpty](t, 6, `{"s":"x"}`); fail != nil || len(got) != 1 {
		t.Errorf("valid: %v, %v", got, fail)
	}
	// A pointer request type with a value-receiver Validate.
	if _, fail := dispatchTyped[*positive](t, 5, `{"n":-1}`); fail == nil || fail.Reason != handler.ReasonArgumentValueError {
		t.Errorf("*positive: %v, want ArgumentValueError", fail)
	}
}

func TestHandleRunsWithRawCallbacksInOrder(t *testing.T) {
	t.Parallel()
	var rec recorder
	r := handler.NewRouter()
	r.On(1, rec.raw("raw1"))
	handler.Handle(r, 1, func(_ handler.Conn, m move) error {
		rec.add("typed %d,%d", m.X, m.Y)
		return nil
	})
	r.On(1, rec.raw("raw2"))
	mustDispatch(t, r, nil, 1, `{"x":1,"y":2}`)
	wantCalls(t, &rec, `raw1 {"x":1,"y":2}`, "typed 1,2", `raw2 {"x":1,"y":2}`)

	// A decoding failure stops the callbacks after the typed one.
	if fail := r.Dispatch(nil, 1, []byte(`{"x":1}`)); fail == nil || fail.Reason != handler.ReasonArgumentMissing {
		t.Fatalf("Dispatch = %v, want ArgumentMissing", fail)
	}
	wantCalls(t, &rec, `raw1 {"x":1}`)
}

type sum struct {
	A int `json:"a" simplerpc:"required"`
	B int `json:"b" simplerpc:"required"`
}

type total struct {
	Total int `json:"total"`
}

func TestHandleCall(t *testing.T) {
	t.Parallel()
	r := handler.NewRouter()
	var calls int
	handler.HandleCall(r, 10, func(_ handler.Conn, req sum) (total, error) {
		calls++
		if req.A < 0 {
			return total{}, handler.ArgumentValueError("a must not be negative")
		}
		return total{req.A + req.B}, nil
	})

	res, fail := r.DispatchCall(nil, 10, []byte(`{"a":2,"b":3}`))
	if fail != nil {
		t.Fatal(fail)
	}
	if got, ok := res.(total); !ok || got.Total != 5 {
		t.Fatalf("DispatchCall result = %#v, want total{5}", res)
	}

	tests := []struct {
		data, reason, message string
	}{
		{`{"a":2}`, handler.ReasonArgumentMissing, "Expected argument 'b' in opcode 10"},
		{`{"a":"2","b":3}`, handler.ReasonArgumentTypeError, ""},
		{`{"a":-1,"b":3}`, handler.ReasonArgumentValueError, "a must not be negative"},
	}
	for _, tt := range tests {
		res, fail := r.DispatchCall(nil, 10, []byte(tt.data))
		if res != nil || fail == nil || fail.Reason != tt.reason || tt.message != "" && fail.Message != tt.message {
			t.Errorf("%s: DispatchCall = %v, %#v; want %s %q", tt.data, res, fail, tt.reason, tt.message)
		}
	}
	if calls != 2 {
		t.Errorf("fn called %d times, want 2 (not on decoding failures)", calls)
	}

	// The call handler does not answer one-way frames.
	mustDispatch(t, r, nil, 10, `{"a":1,"b":1}`)
	if calls != 2 {
		t.Errorf("Dispatch ran the call handler")
	}

	// Through a Conn: the result and the failures survive the wire.
	client := &fakeConn{peer: r}
	var out total
	if err := client.Call(context.Background(), 10, sum{A: 20, B: 22}, &out); err != nil || out.Total != 42 {
		t.Errorf("Call = %v, %+v", err, out)
	}
	err := client.Call(context.Background(), 10, map[string]int{"a": 1}, &out)
	var am handler.ArgumentMissing
	if !errors.As(err, &am) || am != "Expected argument 'b' in opcode 10" {
		t.Errorf("Call without b = %v, want ArgumentMissing", err)
	}
	err = client.Call(context.Background(), 11, sum{}, nil)
	var he *handler.Error
	if !errors.As(err, &he) || he.Reason != handler.ReasonUnknownOpcode || handler.ReasonOf(err) != handler.ReasonUnknownOpcode {
		t.Errorf("Call to unknown opcode = %v, want *Error UnknownOpcode", err)
	}
}
