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

// badInputs is the table of PROTOCOL.md §1 ("How the original reads a
// frame"), each row padded to 256 bytes with spaces. pyKind is how the
// original's reading fails ("" when it accepts the frame).
var badInputs = []struct {
	text   string
	ok     bool
	op     codec.Opcode
	obj    string
	msg    string // exact Message of the error, when the original had one
	prefix string // else a prefix of it
	pyKind string
}{
	{text: `1 {"a": 1}`, ok: true, op: 1, obj: `{"a": 1}`},
	{text: `+3{"a":1}`, ok: true, op: 3, obj: `{"a":1}`},
	{text: ` 4{"a":1}`, ok: true, op: 4, obj: `{"a":1}`},
	{text: `0`, msg: "JSON data not found", pyKind: "nojson"},
	{text: `1[1,2]`, msg: "JSON data not found", pyKind: "nojson"},
	{text: `1{"a":`, op: 1, msg: "JSON malformed for opcode: 1", pyKind: "json"},
	{text: `1{"a":1}}`, op: 1, msg: "JSON malformed for opcode: 1", pyKind: "json"},
	{text: `abc{}`, prefix: "Opcode malformed", pyKind: "opcode"},
	{text: `{}`, prefix: "Opcode malformed", pyKind: "opcode"},
}

func TestDecodeBadInputTable(t *testing.T) {
	for _, row := range badInputs {
		t.Run(row.text, func(t *testing.T) {
			frame := padTo(t, row.text, goldenSize)
			op, obj, err := codec.Decode(frame)
			if row.ok {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if op != row.op || string(obj) != row.obj {
					t.Errorf("Decode = %d, %q; want %d, %q", op, obj, row.op, row.obj)
				}
				return
			}
			if obj != nil {
				t.Errorf("obj = %q on error, want nil", obj)
			}
			me := checkMalformed(t, err, row.msg, row.op)
			if row.prefix != "" && !strings.HasPrefix(me.Message, row.prefix) {
				t.Errorf("Message = %q, want prefix %q", me.Message, row.prefix)
			}
		})
	}
}

// TestOriginalReadingAgrees runs the bad-input table and more frames through
// python3 running the original's reading algorithm, and checks that Decode
// accepts exactly what the original accepts, with the same opcode and data.
// The documented departures (NaN and Infinity, which the original's
// json.loads accepts; opcodes outside int32) are kept out of this set and
// tested on their own.
func TestOriginalReadingAgrees(t *testing.T) {
	t.Parallel()
	texts := []string{}
	for _, row := range badInputs {
		texts = append(texts, row.text)
	}
	// Opcode texts, judged by Python's int().
	for _, op := range []string{
		"0", "-0", "+0", "007", "-007", "1_0", "1__0", "_1", "1_", "+-1", "--1", "- 1", "+ 1",
		" \t\n\r\v\f7 \t", "2147483647", "-2147483648",
		"1 2", "0x10", "1e3", "1.0", "", "+", "-", " ", "\x00", "1\x00", "abc", "\x85", "1\xa0",
	} {
		texts = append(texts, op+`{"k":1}`)
	}
	// JSON judged by json.loads (strict RFC 8259 apart from NaN/Infinity).
	for _, js := range []string{
		`{}`, ` {} `, `{"a":1,}`, `{"a" 1}`, `{'a':1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":[1,]}`,
		`{"a":[1 2]}`, `{"a":01}`, `{"a":-01}`, `{"a":00}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`,
		`{"a":1e}`, `{"a":1e+}`, `{"a":+1}`, `{"a":0x1}`, `{"a":-0}`, `{"a":0.5e-3}`,
		`{"a":1E+2}`, `{"a":123456789012345678901234567890}`, `{"a":tru}`, `{"a":True}`,
		`{"a":nul}`, `{"a":nulll}`, `{"a":[true,false,null]}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		`{"a":"\u12G4"}`, `{"a":"\'"}`, `{"a":"\U0041"}`, `{"a":"\u00e9\/\b\f\n\r\t\"\\"}`,
		`{"a":"\ud83d\ude00"}`, "{\"a\":\"\t\"}", "{\"a\":\"\x01\"}", "{\"a\":\"\x7f\"}",
		"{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"\xe2\x98\x83\":\"\xe2\x98\x83\"}", "{\"a\":1}\x00", "{\"a\":1}\t\n\r\v\f",
		"{\"a\":1} x", `{"a":{"b":{"c":[[[[]]]]}}}`, `{"a":"}"}`, `{"a":"{"}`, `{"a":1}{}`,
		`{"a":[}`, `{"a":{]}`, `{"a" : 1 , "b" : [ 1 , 2 ] }`, "{\n\"a\"\r:\t1}",
	} {
		texts = append(texts, "3"+js)
	}
	frames := make([][]byte, len(texts))
	for i, s := range texts {
		frames[i] = padTo(t, s, goldenSize)
	}
	res := runPython(t, goldenSize, frames)
	for i, r := range res {
		op, obj, err := codec.Decode(frames[i])
		switch {
		case r.OK && err != nil:
			t.Errorf("%q: the original reads %d %s, Decode fails: %v", texts[i], r.Op, r.Data, err)
		case !r.OK && err == nil:
			t.Errorf("%q: the original fails (%s: %s), Decode reads %d %s", texts[i], r.Kind, r.Error, op, obj)
		case r.OK:
			if int64(op) != r.Op {
				t.Errorf("%q: opcode %d, the original reads %d", texts[i], op, r.Op)
			}
			if !sameJSON(t, obj, r.Data) {
				t.Errorf("%q: object %s, the original reads %s", texts[i], obj, r.Data)
			}
		default:
			// Both reject: the message names the same fault as the original.
			var me *codec.MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("%q: error %T is not a *MalformedError", texts[i], err)
			}
			want := map[string]string{"nojson": "JSON data not found", "json": "JSON malformed for opcode: ", "opcode": "Opcode malformed"}[r.Kind]
			if r.Kind != "utf8" && !strings.HasPrefix(me.Message, want) {
				t.Errorf("%q: message %q, the original fails with %s (%s)", texts[i], me.Message, r.Kind, r.Error)
			}
		}
	}
	for i, row := range badInputs {
		if res[i].Kind != row.pyKind {
			t.Errorf("%q: the original's outcome is %q, the table says %q", row.text, res[i].Kind, row.pyKind)
		}
	}
}

// TestOriginalReadingDepartures pins down, against python3 running the
// original's reading, every known case where Decode and the original differ.
// Stricter: Python's NaN and Infinity, non-ASCII digits and whitespace,
// opcodes outside int32. Around the opcode both accept exactly the ASCII
// whitespace " \t\n\v\f\r" and reject the separators 0x1c-0x1f.
func TestOriginalReadingDepartures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		text     string
		original bool // the original accepts it
		op       codec.Opcode
	}{
		{text: "\x1c8\x1f{\"a\":1}", original: false}, // both reject the separators

		{text: `1{"a":NaN}`, original: true},
		{text: `1{"a":Infinity}`, original: true},
		{text: `1{"a":-Infinity}`, original: true},
		{text: `2147483648{"a":1}`, original: true},
		{text: `-2147483649{"a":1}`, original: true},
		{text: "\u0661{\"a\":1}", original: true},  // ARABIC-INDIC DIGIT ONE
		{text: "1\u00a0{\"a\":1}", original: true}, // NO-BREAK SPACE
		{text: "1{\"a\":1}\u0085", original: true}, // NEXT LINE in the padding
		{text: "1{\"a\":1}\x1c", original: true},   // FILE SEPARATOR in the padding
	}
	frames := make([][]byte, len(cases))
	for i, tc := range cases {
		frames[i] = padTo(t, tc.text, goldenSize)
	}
	res := runPython(t, goldenSize, frames)
	for i, tc := range cases {
		frame, r := frames[i], res[i]
		if r.OK != tc.original {
			t.Errorf("%q: the original accepts = %v, want %v (%s)", tc.text, r.OK, tc.original, r.Error)
		}
		op, _, err := codec.Decode(frame)
		if tc.original || tc.op == 0 {
			checkMalformed(t, err, "", op)
		} else if err != nil || op != tc.op {
			t.Errorf("%q: Decode = %d, %v; want %d", tc.text, op, err, tc.op)
		}
	}
}

// TestDecodeStricterThanOriginal covers the documented departures from the
// original's json.loads: Python's non-standard NaN and Infinity literals, and
// opcodes outside int32 (rejected, never wrapped).
func TestDecodeStricterThanOriginal(t *testing.T) {
	for _, s := range []string{
		`1{"a":NaN}`, `1{"a":Infinity}`, `1{"a":-Infinity}`, `1{"a":[nan]}`,
	} {
		_, _, err := codec.Decode(padTo(t, s, goldenSize))
		checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
	}
	for _, s := range []string{
		"2147483648", "-2147483649", "99999999999", "4294967297", "-4294967296",
		"9223372036854775807", "9223372036854775808", "18446744073709551617",
		"99999999999999999999999999",
	} {
		_, _, err := codec.Decode(padTo(t, s+`{"a":1}`, goldenSize))
		me := checkMalformed(t, err, "", 0)
		if !strings.HasPrefix(me.Message, "Opcode malformed") {
			t.Errorf("%s: Message = %q", s, me.Message)
		}
	}
}

func TestDecodeOpcodeRange(t *testing.T) {
	for _, tc := range []struct {
		text string
		op   codec.Opcode
	}{
		{"2147483647", math.MaxInt32},
		{"-2147483648", math.MinInt32},
		{"+2147483647", math.MaxInt32},
		{"0", 0},
		{"-0", 0},
		{"-1", codec.OpFailure},
		{"00000000000000000001", 1},
		{"2_147_483_647", math.MaxInt32},
	} {
		op, _, err := codec.Decode(padTo(t, tc.text+"{}", goldenSize))
		if err != nil || op != tc.op {
			t.Errorf("Decode(%q) = %d, %v; want %d", tc.text, op, err, tc.op)
		}
	}
}

func TestDecodePadding(t *testing.T) {
	const obj = `{"a":1}`
	// NUL padding breaks the original's json.loads: malformed.
	frame := make([]byte, goldenSize)
	copy(frame, "1"+obj)
	_, _, err := codec.Decode(frame)
	checkMalformed(t, err, "JSON malformed for opcode: 1", 1)

	// One non-space byte anywhere in the padding is malformed, the last
	// byte included.
	for _, at := range []int{len(obj) + 1, len(obj) + 2, 100, goldenSize - 1} {
		for _, c := range []byte{'x', 0, '}', 0x80, 0x1c} {
			frame := padTo(t, "1"+obj, goldenSize)
			frame[at] = c
			_, _, err := codec.Decode(frame)
			checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
		}
	}

	// Other ASCII whitespace, which the original strips, is accepted.
	frame = padTo(t, "1"+obj+"\t\n\r\v\f \t", goldenSize)
	if op, got, err := codec.Decode(frame); err != nil || op != 1 || string(got) != obj {
		t.Errorf("Decode(whitespace padding) = %d, %q, %v", op, got, err)
	}
}

func TestDecodeFrameSizes(t *testing.T) {
	// Exactly full: no padding at all.
	v := map[string]string{"s": ""}
	over := len(`1{"s":""}`)
	v["s"] = strings.Repeat("x", goldenSize-over)
	frame, err := codec.Append(nil, goldenSize, 1, v)
	if err != nil {
		t.Fatalf("exactly full: %v", err)
	}
	if len(frame) != goldenSize || frame[goldenSize-1] != '}' {
		t.Fatalf("exactly full frame ends %q", frame[goldenSize-4:])
	}
	if op, obj, err := codec.Decode(frame); err != nil || op != 1 || len(obj) != goldenSize-1 {
		t.Errorf("Decode(full) = %d, %d bytes, %v", op, len(obj), err)
	}

	// One byte over: an error, nothing appended, dst untouched up to its
	// capacity.
	v["s"] += "x"
	obj, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func([]byte) ([]byte, error){
		"Append": func(dst []byte) ([]byte, error) { return codec.Append(dst, goldenSize, 1, v) },
		"AppendRaw": func(dst []byte) ([]byte, error) {
			return codec.AppendRaw(dst, goldenSize, 1, obj)
		},
		"AppendRaw/opcode": func(dst []byte) ([]byte, error) {
			return codec.AppendRaw(dst, len(obj), -1, obj)
		},
		"AppendMessageSize": func(dst []byte) ([]byte, error) {
			return codec.AppendMessageSize(dst, len(`-2{"message_size":1000}`)-1, 1000)
		},
		"AppendFailure/too_small": func(dst []byte) ([]byte, error) {
			return codec.AppendFailure(dst, len(`-1{"reason":"R","message":""}`)-1, "R", "m")
		},
		"Append/negative_size": func(dst []byte) ([]byte, error) {
			return codec.Append(dst, -1, 1, struct{}{})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			backing := bytes.Repeat([]byte{'Z'}, 4*goldenSize)
			dst := append(backing[:0], "keep"...)
			got, err := call(dst)
			if !errors.Is(err, codec.ErrFrameTooLarge) {
				t.Fatalf("err = %v, want ErrFrameTooLarge", err)
			}
			if string(got) != "keep" || &got[0] != &backing[0] {
				t.Errorf("dst changed: %q", got)
			}
			if !bytes.Equal(backing[4:], bytes.Repeat([]byte{'Z'}, len(backing)-4)) {
				t.Error("bytes were written past len(dst)")
			}
		})
	}
	// A nil dst stays nil.
	if got, err := codec.Append(nil, 8, 1, v); got != nil || !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Errorf("Append(nil, too large) = %q, %v", got, err)
	}
}

func TestDecodeEmptyObject(t *testing.T) {
	op, obj, err := codec.Decode(padTo(t, "5{}", goldenSize))
	if err != nil || op != 5 || string(obj) != "{}" {
		t.Fatalf("Decode = %d, %q, %v", op, obj, err)
	}
	m := map[string]any{"stale": 1}
	if err := codec.Unmarshal(obj, &m); err != nil || len(m) != 1 {
		t.Errorf("Unmarshal({}) into a map = %v, %v", m, err)
	}
	var fresh map[string]any
	if err := codec.Unmarshal(obj, &fresh); err != nil || fresh == nil || len(fresh) != 0 {
		t.Errorf("Unmarshal({}) = %#v, %v", fresh, err)
	}
	if op, obj, err := codec.Decode(padTo(t, "5{ \t\n }", goldenSize)); err != nil || op != 5 || string(obj) != "{ \t\n }" {
		t.Errorf("Decode(spaced {}) = %d, %q, %v", op, obj, err)
	}
}

func TestDecodeNesting(t *testing.T) {
	t.Parallel()
	const size = 4096
	// depth counts the top-level object: 1 + arrays.
	nest := func(arrays int) []byte {
		return padTo(t, `1{"a":`+strings.Repeat("[", arrays)+strings.Repeat("]", arrays)+"}", size)
	}
	if _, _, err := codec.Decode(nest(511)); err != nil {
		t.Errorf("depth 512: %v", err)
	}
	for _, arrays := range []int{512, 513, 1000, 2000} {
		_, _, err := codec.Decode(nest(arrays))
		me := checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
		if !strings.Contains(me.Error(), "nested too deeply") {
			t.Errorf("depth %d: %v", arrays+1, err)
		}
	}
	// Objects count as arrays do.
	deep := `1` + strings.Repeat(`{"a":`, 512) + "1" + strings.Repeat("}", 512)
	if _, _, err := codec.Decode(padTo(t, deep, size)); err != nil {
		t.Errorf("512 objects: %v", err)
	}
	deep = `1` + strings.Repeat(`{"a":`, 513) + "1" + strings.Repeat("}", 513)
	_, _, err := codec.Decode(padTo(t, deep, size))
	checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
	// Mixed arrays and objects, unwinding correctly at every level.
	mixed := `1{"a":` + strings.Repeat(`[{"b":`, 200) + "1" + strings.Repeat("}]", 200) + "}"
	if _, _, err := codec.Decode(padTo(t, mixed, size)); err != nil {
		t.Errorf("mixed nesting: %v", err)
	}
	bad := `1{"a":` + strings.Repeat(`[{"b":`, 200) + "1" + strings.Repeat("]}", 200) + "}"
	_, _, err = codec.Decode(padTo(t, bad, size))
	checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	valid := []string{
		`{"a":0}`, `{"a":-0}`, `{"a":0.5}`, `{"a":-0.5e-3}`, `{"a":1E10}`, `{"a":1e+2}`, `{"a":1e-2}`,
		`{"a":123456789012345678901234567890}`, `{"a":[0,1,-1,10,0.0,0e0]}`,
		`{"a":true,"b":false,"c":null}`, `{"a":[true,false,null]}`,
		`{"a":"\u00e9\u00E9\/\b\f\n\r\t\"\\"}`, `{"a":"\ud83d\ude00"}`, `{"a":"\ud800"}`,
		"{\"a\":\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\x7f\"}", `{"":""}`, `{"a":{},"b":[]}`,
		"{ \"a\" : [ 1 , { } , [ ] ] }", `{"a":"}{][,:"}`, `{"a":1,"a":2}`,
	}
	for _, js := range valid {
		op, obj, err := codec.Decode(padTo(t, "9"+js, goldenSize))
		if err != nil || op != 9 || string(obj) != js {
			t.Errorf("Decode(%q) = %d, %q, %v", js, op, obj, err)
			continue
		}
		if !json.Valid(obj) {
			t.Errorf("%q accepted, but encoding/json rejects it", js)
		}
	}
	invalid := []string{
		// invalid UTF-8 inside strings
		"{\"a\":\"\xff\"}", "{\"a\":\"\xc3\"}", "{\"a\":\"\xc3(\"}", "{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"\xfe\":1}", "{\"a\":\"\xe2\x98\"}",
		// non-ASCII outside strings
		"{\"a\":\xc3\xa9}", "{\xc3\xa9:1}",
		// escapes
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, `{"a":"\'"}`, `{"a":"\U0041"}`, `{"a":"\"}`,
		`{"a":"\u"}`, `{"a":"\ "}`, `{"a\q":1}`,
		// control characters in strings
		"{\"a\":\"\t\"}", "{\"a\":\"\n\"}", "{\"a\":\"\x00\"}", "{\"a\":\"\x1f\"}", "{\"a\x01\":1}",
		// numbers
		`{"a":01}`, `{"a":-01}`, `{"a":00}`, `{"a":-}`, `{"a":1.}`, `{"a":1.e1}`, `{"a":.5}`,
		`{"a":1e}`, `{"a":1e+}`, `{"a":1e-}`, `{"a":+1}`, `{"a":0x1}`, `{"a":1a}`, `{"a":--1}`,
		`{"a":-a}`, `{"a":1.5.2}`, `{"a":1e5e5}`, `{"a":[-]}`, `{"a":[1.]}`, `{"a":[1e]}`,
		// literals
		`{"a":tru}`, `{"a":True}`, `{"a":nul}`, `{"a":nulll}`, `{"a":fals}`, `{"a":falsee}`,
		`{"a":t}`, `{"a":NULL}`, `{"a":undefined}`, `{"a":truefalse}`,
		// structure
		`{"a":1,}`, `{"a" 1}`, `{'a':1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[1 2]}`,
		`{"a":[}`, `{"a":{]}`, `{,}`, `{"a"}`, `{"a":}`, `{:1}`, `{1:1}`, `{"a"::1}`,
		`{"a":1,,"b":2}`, `{"a":[,1]}`, `{"a":1}}`, `{"a":1}]`, `{"a":1}{}`, `{"a":1},`,
		`{"a":1} /* c */`, `{"a":1}//`, `{{}}`, `{[]}`, `{"a":1`, `{"a":[1,2`, `{"a":"x`, `{`,
	}
	for _, js := range invalid {
		_, obj, err := codec.Decode(padTo(t, "9"+js, goldenSize))
		if err == nil {
			t.Errorf("Decode(%q) accepted %q", js, obj)
			continue
		}
		checkMalformed(t, err, "JSON malformed for opcode: 9", 9)
		var me *codec.MalformedError
		if errors.As(err, &me) && me.Unwrap() == nil {
			t.Errorf("Decode(%q): no underlying cause", js)
		}
	}
}

func TestDecodeOpcodeText(t *testing.T) {
	for _, tc := range []struct {
		text string
		op   codec.Opcode
		ok   bool
	}{
		{" \t+12 \n", 12, true},
		{"\t-5 \n", -5, true},
		{"\v7\f", 7, true},
		{"\x1f7\x1c", 0, false}, // Python's int() rejects the separators too
		{"1_0", 10, true},
		{"1__0", 0, false},
		{"_1", 0, false},
		{"1_", 0, false},
		{"- 5", 0, false},
		{"++5", 0, false},
		{"5 5", 0, false},
		{"0x10", 0, false},
		{"", 0, false},
		{"-", 0, false},
		{"\x00", 0, false},
		{strings.Repeat("9", 100), 0, false},
		{strings.Repeat(" ", 100) + "3", 3, true},
	} {
		op, _, err := codec.Decode(padTo(t, tc.text+`{"k":1}`, goldenSize))
		if tc.ok {
			if err != nil || op != tc.op {
				t.Errorf("Decode(%q) = %d, %v; want %d", tc.text, op, err, tc.op)
			}
			continue
		}
		me := checkMalformed(t, err, "", 0)
		if !strings.HasPrefix(me.Message, "Opcode malformed") || len(me.Message) > 64 {
			t.Errorf("Decode(%q): Message = %q", tc.text, me.Message)
		}
	}
}

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
