// Tests of building frames (Append, AppendRaw, failures shortened to fit),
// of decoding into typed values, and of what must not allocate.

package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/simplerpc/simplerpc/codec"
)

func TestAppendNotObject(t *testing.T) {
	var nilMap map[string]any
	var nilPtr *struct{ A int }
	for _, v := range []any{
		[]int{1}, []any{}, "s", 42, 1.5, true, nil, nilMap, nilPtr,
		json.RawMessage(`[1]`), json.RawMessage(`"x"`), json.RawMessage(`null`),
	} {
		if _, err := codec.Marshal(v); !errors.Is(err, codec.ErrNotObject) {
			t.Errorf("Marshal(%#v) error = %v, want ErrNotObject", v, err)
		}
		dst := []byte("keep")
		got, err := codec.Append(dst, goldenSize, 1, v)
		if !errors.Is(err, codec.ErrNotObject) {
			t.Errorf("Append(%#v) error = %v, want ErrNotObject", v, err)
		}
		if string(got) != "keep" {
			t.Errorf("Append(%#v) changed dst: %q", v, got)
		}
	}
	// Values go-json cannot encode are an error, but not ErrNotObject.
	for _, v := range []any{map[string]any{"c": make(chan int)}, map[string]float64{"x": math.NaN()}} {
		_, err := codec.Append(nil, goldenSize, 1, v)
		if err == nil || errors.Is(err, codec.ErrNotObject) || errors.Is(err, codec.ErrFrameTooLarge) {
			t.Errorf("Append(%T) error = %v", v, err)
		}
	}
	// A RawMessage holding an object is compacted.
	got, err := codec.Append(nil, goldenSize, 1, json.RawMessage(" {\"a\" : [1, 2]}\n"))
	if err != nil || string(bytes.TrimRight(got, " ")) != `1{"a":[1,2]}` {
		t.Errorf("Append(RawMessage) = %q, %v", got, err)
	}
	// And one that is not valid JSON is refused, never written.
	for _, raw := range []string{`{"a":`, `{"a":1}x`, `{"a":1}{}`} {
		if got, err := codec.Append(nil, goldenSize, 1, json.RawMessage(raw)); err == nil {
			t.Errorf("Append(RawMessage %q) = %q", raw, got)
		}
	}
}

func TestAppendRaw(t *testing.T) {
	for _, obj := range []string{
		`[1]`, `{"a":1}x`, `{"a":1}{}`, `{"a":`, ``, ` `, `"s"`, `null`, `1`, "{\"a\":\"\xff\"}",
		"{\"a\":1}\x00", `{"a":01}`, `x{"a":1}`, `{"a":1}}`,
	} {
		dst := []byte("keep")
		got, err := codec.AppendRaw(dst, goldenSize, 1, []byte(obj))
		if !errors.Is(err, codec.ErrNotObject) {
			t.Errorf("AppendRaw(%q) error = %v, want ErrNotObject", obj, err)
		}
		if string(got) != "keep" {
			t.Errorf("AppendRaw(%q) changed dst: %q", obj, got)
		}
	}
	// Surrounding whitespace is allowed and trimmed; inner whitespace kept.
	obj := []byte(" \t\r\n{\"a\": [1, 2]}\n\t ")
	before := string(obj)
	got, err := codec.AppendRaw(nil, goldenSize, -3, obj)
	if err != nil {
		t.Fatal(err)
	}
	if want := padTo(t, `-3{"a": [1, 2]}`, goldenSize); !bytes.Equal(got, want) {
		t.Errorf("AppendRaw = %q", bytes.TrimRight(got, " "))
	}
	if string(obj) != before {
		t.Error("AppendRaw modified its input")
	}
	// The frame owns a copy: changing obj later does not change it.
	obj[5] = 'X'
	if got[3] != '"' {
		t.Error("the frame aliases obj")
	}
	// Only the object counts toward the size, not the trimmed whitespace.
	padded := []byte("   {}   ")
	if got, err := codec.AppendRaw(nil, 3, 1, padded); err != nil || string(got) != "1{}" {
		t.Errorf("AppendRaw(trimmed, exactly full) = %q, %v", got, err)
	}
}

func TestAppendFailureShortens(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é☃x😀\"<&\\\n", 60)
	for size := 20; size <= 700; size++ {
		frame, err := codec.AppendFailure(nil, size, "ArgumentValueError", long)
		minimal := len(`-1{"reason":"ArgumentValueError","message":""}`)
		if size < minimal {
			if !errors.Is(err, codec.ErrFrameTooLarge) || frame != nil {
				t.Errorf("size %d: %q, %v; want ErrFrameTooLarge", size, frame, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(frame) != size {
			t.Fatalf("size %d: frame is %d bytes", size, len(frame))
		}
		op, obj, err := codec.Decode(frame)
		if err != nil || op != codec.OpFailure {
			t.Fatalf("size %d: Decode = %d, %v", size, op, err)
		}
		var f struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(obj, &f); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if f.Reason != "ArgumentValueError" {
			t.Errorf("size %d: reason = %q", size, f.Reason)
		}
		if !strings.HasPrefix(long, f.Message) || !utf8.ValidString(f.Message) {
			t.Errorf("size %d: message %q is not a whole-rune prefix", size, f.Message)
		}
		// No needless cut: one more rune would not have fitted.
		if len(f.Message) < len(long) {
			_, n := utf8.DecodeRuneInString(long[len(f.Message):])
			more, _ := codec.Marshal(map[string]string{"reason": f.Reason, "message": long[:len(f.Message)+n]})
			if len("-1")+len(more) <= size {
				t.Errorf("size %d: message cut to %d bytes, %d would fit", size, len(f.Message), len(f.Message)+n)
			}
		}
	}
	// Invalid UTF-8 and control bytes (escaped to six bytes each by go-json)
	// still give a frame that decodes, whatever the size.
	bad := strings.Repeat("\xff\x00<ab\u2028\xe2\x98", 40)
	for size := len(`-1{"reason":"R","message":""}`); size <= 400; size++ {
		frame, err := codec.AppendFailure(nil, size, "R", bad)
		if err != nil || len(frame) != size {
			t.Fatalf("size %d: %d bytes, %v", size, len(frame), err)
		}
		_, obj, err := codec.Decode(frame)
		var f struct{ Reason, Message string }
		if err == nil {
			err = json.Unmarshal(obj, &f)
		}
		if err != nil || f.Reason != "R" || (size > 60 && f.Message == "") {
			t.Fatalf("size %d: %q, %v", size, frame, err)
		}
	}

	// A message that fits is untouched.
	frame, err := codec.AppendFailure(nil, goldenSize, "MalformedPayload", "JSON data not found")
	if err != nil || string(bytes.TrimRight(frame, " ")) != `-1{"reason":"MalformedPayload","message":"JSON data not found"}` {
		t.Errorf("AppendFailure = %q, %v", frame, err)
	}
	// With an id, as a reply failure.
	frame, err = codec.AppendFailureOp(nil, 64, codec.OpReplyFailure, ptr(uint64(7)), "R", strings.Repeat("m", 100))
	if err != nil || len(frame) != 64 || !bytes.HasPrefix(frame, []byte(`-5{"id":7,"reason":"R","message":"mmm`)) {
		t.Errorf("AppendFailureOp = %q, %v", frame, err)
	}
	if _, _, err := codec.Decode(frame); err != nil {
		t.Error(err)
	}
}

type typedArgs struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Inner struct {
		Flag bool `json:"flag"`
	} `json:"inner"`
}

func TestUnmarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		obj, field, value string
	}{
		{`{"name":1}`, "name", "number"},
		{`{"count":"x"}`, "count", "string"},
		{`{"inner":{"flag":"yes"}}`, "inner.flag", "string"},
		{`{"inner":[]}`, "inner", "array"},
	} {
		var v typedArgs
		err := codec.Unmarshal([]byte(tc.obj), &v)
		var te *codec.TypeError
		if !errors.As(err, &te) {
			t.Errorf("Unmarshal(%s) = %T %v, want *TypeError", tc.obj, err, err)
			continue
		}
		if te.Reason() != "ArgumentTypeError" {
			t.Errorf("Reason() = %q", te.Reason())
		}
		if te.Field != tc.field || !strings.HasPrefix(te.Value, tc.value) {
			t.Errorf("Unmarshal(%s): Field %q Value %q, want %q %q", tc.obj, te.Field, te.Value, tc.field, tc.value)
		}
		if te.Unwrap() == nil || !strings.Contains(te.Error(), tc.field) {
			t.Errorf("Error() = %q, Unwrap() = %v", te.Error(), te.Unwrap())
		}
		if errors.Is(err, codec.ErrMalformed) {
			t.Errorf("a type error matches ErrMalformed")
		}
	}
	for _, obj := range []string{`{"name":`, `{"name":"x"}x`, `{"name" "x"}`, `{"count":01}`, ``} {
		var v typedArgs
		err := codec.Unmarshal([]byte(obj), &v)
		me := checkMalformed(t, err, "JSON malformed", 0)
		if me.Unwrap() == nil {
			t.Errorf("Unmarshal(%q): no cause", obj)
		}
		var te *codec.TypeError
		if errors.As(err, &te) {
			t.Errorf("Unmarshal(%q): a syntax error is a *TypeError", obj)
		}
	}
	// A non-pointer is neither: go-json's own error comes back.
	var v typedArgs
	err := codec.Unmarshal([]byte(`{}`), v)
	var me *codec.MalformedError
	var te *codec.TypeError
	if err == nil || errors.As(err, &me) || errors.As(err, &te) {
		t.Errorf("Unmarshal(non-pointer) = %T %v", err, err)
	}
	// And a good object decodes.
	if err := codec.Unmarshal([]byte(`{"name":"n","count":3,"inner":{"flag":true},"extra":[1]}`), &v); err != nil ||
		v.Name != "n" || v.Count != 3 || !v.Inner.Flag {
		t.Errorf("Unmarshal = %+v, %v", v, err)
	}
}

func TestReasonConstants(t *testing.T) {
	if codec.ReasonMalformedPayload != "MalformedPayload" || codec.ReasonArgumentTypeError != "ArgumentTypeError" {
		t.Errorf("reasons %q, %q differ from the original's class names",
			codec.ReasonMalformedPayload, codec.ReasonArgumentTypeError)
	}
}

func TestOpcodeString(t *testing.T) {
	for op, want := range map[codec.Opcode]string{
		codec.OpFailure: "failure(-1)", codec.OpMessageSize: "message_size(-2)",
		codec.OpRequest: "request(-3)", codec.OpReply: "reply(-4)",
		codec.OpReplyFailure: "reply_failure(-5)", codec.OpPing: "ping(-6)", codec.OpPong: "pong(-7)", codec.OpGoAway: "go_away(-8)", codec.OpAuth: "auth(-9)",
		0: "0", 42: "42", -10: "-10", math.MinInt32: "-2147483648",
	} {
		if got := op.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int32(op), got, want)
		}
		if got := fmt.Sprint(op); got != want {
			t.Errorf("fmt.Sprint(%d) = %q", int32(op), got)
		}
	}
}

// TestZeroAllocs checks the allocation promises of the hot paths.
func TestZeroAllocs(t *testing.T) {
	frame := padTo(t, `7{"nested": {"a": [1, 2.5, null, true, "x"]}, "u": "h\u00e9llo \u2603 héllo"}`, 1024)
	obj := []byte(`{"nested":{"a":[1,2.5,null,true,"x"]},"u":"héllo ☃"}`)
	buf := make([]byte, 0, 1024)
	var sink int
	for name, f := range map[string]func(){
		"Decode": func() {
			op, obj, err := codec.Decode(frame)
			if err != nil {
				panic(err)
			}
			sink += int(op) + len(obj)
		},
		"AppendRaw": func() {
			var err error
			buf, err = codec.AppendRaw(buf[:0], 1024, 7, obj)
			if err != nil {
				panic(err)
			}
		},
		"AppendMessageSize": func() {
			var err error
			buf, err = codec.AppendMessageSize(buf[:0], 1024, 1024)
			if err != nil {
				panic(err)
			}
		},
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
	_ = sink
}
