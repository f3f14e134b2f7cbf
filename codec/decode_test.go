// Tests of decoding a frame: bad input, the original's reading and where
// we depart from it, padding, sizes, nesting and opcodes.

package codec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

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
