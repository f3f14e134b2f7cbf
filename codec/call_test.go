package codec_test

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/simplerpc/simplerpc/codec"
)

// callCase is one call frame and how DecodeFrame must read it. The frame is
// the opcode and text, padded with spaces unless raw.
type callCase struct {
	name string
	op   codec.Opcode
	text string
	raw  bool // text is the whole frame: no padding added
	fast bool // read in one pass (FastCall takes it)
	// What DecodeFrame returns: a Decode error (frameErr, its exact
	// Message), an envelope error (callErr), or the call.
	frameErr string
	callErr  bool
	want     codec.Call
}

func (tc callCase) frame() []byte {
	s := tc.op.String()
	s = s[strings.IndexByte(s, '(')+1 : len(s)-1] // "request(-3)" -> "-3"
	if tc.raw {
		return []byte(s + tc.text)
	}
	return append([]byte(s+tc.text), bytes.Repeat([]byte(" "), 64)...)
}

// deepObject is n nested objects: {"a":{"a":…{}…}}.
func deepObject(n int) string {
	return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1)
}

// requestCases are the request frames: simplerpc's own form, read in one
// pass; other layouts, which go-json reads; envelopes that are refused; and
// frames Decode refuses before the envelope is looked at.
var requestCases = []callCase{
	// simplerpc's own form.
	{name: "minimal", text: `{"id":1,"op":0,"data":{}}`, fast: true, want: codec.Call{ID: 1, Data: []byte(`{}`)}},
	{name: "max id and op", text: `{"id":18446744073709551615,"op":2147483647,"data":{"a":[1,{"b":"}"}]}}`, fast: true,
		want: codec.Call{ID: math.MaxUint64, Op: math.MaxInt32, Data: []byte(`{"a":[1,{"b":"}"}]}`)}},
	{name: "min op", text: `{"id":0,"op":-2147483648,"data":{}}`, fast: true, want: codec.Call{Op: math.MinInt32, Data: []byte(`{}`)}},
	{name: "negative op", text: `{"id":7,"op":-3,"data":{}}`, fast: true, want: codec.Call{ID: 7, Op: -3, Data: []byte(`{}`)}},
	{name: "minus zero op", text: `{"id":7,"op":-0,"data":{}}`, fast: true, want: codec.Call{ID: 7, Data: []byte(`{}`)}},
	{name: "escapes in data", text: `{"id":7,"op":3,"data":{"s":"a\"}b\\","t":"\\\\"}}`, fast: true,
		want: codec.Call{ID: 7, Op: 3, Data: []byte(`{"s":"a\"}b\\","t":"\\\\"}`)}},
	{name: "escaped backslash before quote", text: `{"id":7,"op":3,"data":{"s":"\\\"}\\"}}`, fast: true,
		want: codec.Call{ID: 7, Op: 3, Data: []byte(`{"s":"\\\"}\\"}`)}},
	{name: "white space inside data", text: `{"id":7,"op":3,"data":{"a": [1, 2], "b" : {}}}`, fast: true,
		want: codec.Call{ID: 7, Op: 3, Data: []byte(`{"a": [1, 2], "b" : {}}`)}},
	{name: "non-ASCII data", text: `{"id":7,"op":3,"data":{"é":"ü ☃"}}`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{"é":"ü ☃"}`)}},
	{name: "512 levels in all", text: `{"id":1,"op":0,"data":` + deepObject(511) + `}`, fast: true,
		want: codec.Call{ID: 1, Data: []byte(deepObject(511))}},
	{name: "tab in the padding", text: "{\"id\":1,\"op\":0,\"data\":{}}\t\r\n\v\f ", raw: true, fast: true, want: codec.Call{ID: 1, Data: []byte(`{}`)}},
	{name: "no padding", text: `{"id":1,"op":0,"data":{}}`, raw: true, fast: true, want: codec.Call{ID: 1, Data: []byte(`{}`)}},

	// Other layouts: read in one pass too, but for an escaped key, keys
	// in capitals (go-json matches them case-insensitively), an unknown
	// member whose value is an array and white space before the envelope.
	{name: "key order", text: `{"op":3,"id":7,"data":{}}`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "data first", text: `{"data":{"a":1},"op":3,"id":7}`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{"a":1}`)}},
	{name: "white space", text: `{"id":7, "op":3,"data":{}}`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "spaced", text: `{ "id" : 7 , "op" : 3 , "data" : { "a" : 1 } }`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{ "a" : 1 }`)}},
	{name: "new lines", text: "{\n\t\"id\": 7,\n\t\"op\": 3,\n\t\"data\": {}\n}", fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "space after opcode", text: ` {"id":7,"op":3,"data":{}}`, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "extra key after", text: `{"id":7,"op":3,"data":{},"x":1}`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "extra key before", text: `{"x":[1,{"id":2}],"id":7,"op":3,"data":{}}`, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "duplicate data", text: `{"id":7,"op":3,"data":{"a":1},"data":{"b":2}}`, fast: true, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{"b":2}`)}},
	{name: "duplicate id", text: `{"id":7,"op":3,"data":{}, "id":8}`, fast: true, want: codec.Call{ID: 8, Op: 3, Data: []byte(`{}`)}},
	{name: "escaped key", text: `{"i\u0064":7,"op":3,"data":{}}`, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},
	{name: "keys in capitals", text: `{"ID":7,"Op":3,"DATA":{}}`, want: codec.Call{ID: 7, Op: 3, Data: []byte(`{}`)}},

	// Envelopes that cannot be read.
	{name: "id overflows", text: `{"id":18446744073709551616,"op":3,"data":{}}`, callErr: true},
	{name: "op beyond int32", text: `{"id":7,"op":2147483648,"data":{}}`, callErr: true},
	{name: "op below int32", text: `{"id":7,"op":-2147483649,"data":{}}`, callErr: true},
	{name: "negative id", text: `{"id":-7,"op":3,"data":{}}`, callErr: true},
	{name: "minus zero id", text: `{"id":-0,"op":3,"data":{}}`, callErr: true},
	{name: "fractional id", text: `{"id":7.5,"op":3,"data":{}}`, callErr: true},
	{name: "id with a fraction of zero", text: `{"id":1.0,"op":0,"data":{}}`, callErr: true},
	{name: "id with an exponent", text: `{"id":1e2,"op":0,"data":{}}`, callErr: true},
	{name: "fractional op", text: `{"id":1,"op":0.5,"data":{}}`, callErr: true},
	{name: "data an array", text: `{"id":7,"op":3,"data":[]}`, callErr: true},
	{name: "data null", text: `{"id":7,"op":3,"data":null}`, callErr: true},
	{name: "data a string", text: `{"id":7,"op":3,"data":"{}"}`, callErr: true},
	{name: "data a number", text: `{"id":7,"op":3,"data":1}`, callErr: true},
	{name: "no data", text: `{"id":7,"op":3}`, callErr: true},
	{name: "no id", text: `{"op":3,"data":{}}`, callErr: true},
	{name: "no op", text: `{"id":7,"data":{}}`, callErr: true},
	{name: "id null", text: `{"id":null,"op":3,"data":{}}`, callErr: true},
	{name: "id a string", text: `{"id":"7","op":3,"data":{}}`, callErr: true},
	{name: "op a string", text: `{"id":7,"op":"3","data":{}}`, callErr: true},
	{name: "last id bad", text: `{"id":7,"op":3,"data":{},"id":"x"}`, callErr: true},
	{name: "last data not an object", text: `{"id":7,"op":3,"data":{},"data":[]}`, callErr: true},
	{name: "empty envelope", text: `{}`, callErr: true},

	// Frames Decode refuses.
	{name: "leading zero in id", text: `{"id":01,"op":0,"data":{}}`, frameErr: "JSON malformed for opcode: -3"},
	{name: "leading zero in op", text: `{"id":1,"op":00,"data":{}}`, frameErr: "JSON malformed for opcode: -3"},
	{name: "malformed data", text: `{"id":1,"op":0,"data":{"a":}}`, frameErr: "JSON malformed for opcode: -3"},
	{name: "invalid UTF-8", text: "{\"id\":1,\"op\":0,\"data\":{\"a\":\"\xff\"}}", frameErr: "JSON malformed for opcode: -3"},
	{name: "envelope not closed", text: `{"id":1,"op":0,"data":{}`, frameErr: "JSON malformed for opcode: -3"},
	{name: "one brace too many", text: `{"id":1,"op":0,"data":{}}}`, frameErr: "JSON malformed for opcode: -3"},
	{name: "trailing data", text: `{"id":1,"op":0,"data":{}}x`, frameErr: "JSON malformed for opcode: -3"},
	{name: "NUL padding", text: `{"id":1,"op":0,"data":{}}` + strings.Repeat("\x00", 16), raw: true, frameErr: "JSON malformed for opcode: -3"},
	{name: "padding then a byte", text: `{"id":1,"op":0,"data":{}}` + strings.Repeat(" ", 15) + "}", raw: true, frameErr: "JSON malformed for opcode: -3"},
	{name: "513 levels", text: `{"id":1,"op":0,"data":` + deepObject(512) + `}`, frameErr: "JSON malformed for opcode: -3"},
	{name: "no object", text: ``, frameErr: "JSON data not found"},
	{name: "an array", text: `[1]`, frameErr: "JSON data not found"},
}

// replyCases are the reply frames, as requestCases.
var replyCases = []callCase{
	{name: "own form", text: `{"id":9,"data":{"n":1}}`, fast: true, want: codec.Call{ID: 9, Data: []byte(`{"n":1}`)}},
	{name: "escapes", text: `{"id":7,"data":{"s":"a\"}b\\"}}`, fast: true, want: codec.Call{ID: 7, Data: []byte(`{"s":"a\"}b\\"}`)}},
	{name: "id 0, non-ASCII", text: `{"id":0,"data":{"é":"ü"}}`, fast: true, want: codec.Call{Data: []byte(`{"é":"ü"}`)}},
	{name: "max id", text: `{"id":18446744073709551615,"data":{}}`, fast: true, want: codec.Call{ID: math.MaxUint64, Data: []byte(`{}`)}},
	{name: "key order", text: `{"data":{"n":1},"id":9}`, fast: true, want: codec.Call{ID: 9, Data: []byte(`{"n":1}`)}},
	{name: "spaced", text: `{"id": 9, "data": {"sum": 3}}`, fast: true, want: codec.Call{ID: 9, Data: []byte(`{"sum": 3}`)}},
	{name: "op is ignored", text: `{"id":9,"op":1,"data":{"n":1}}`, want: codec.Call{ID: 9, Data: []byte(`{"n":1}`)}},
	{name: "op of any type is ignored", text: `{"id":9,"op":"x","data":{}}`, want: codec.Call{ID: 9, Data: []byte(`{}`)}},
	{name: "extra key", text: `{"id":9,"data":{},"reason":"x"}`, fast: true, want: codec.Call{ID: 9, Data: []byte(`{}`)}},
	{name: "duplicate data", text: `{"id":9,"data":{"a":1},"data":{}}`, fast: true, want: codec.Call{ID: 9, Data: []byte(`{}`)}},
	{name: "id a string", text: `{"id":"9","data":{}}`, callErr: true},
	{name: "no id", text: `{"data":{}}`, callErr: true},
	{name: "no data", text: `{"id":9}`, callErr: true},
	{name: "data an array", text: `{"id":9,"data":[]}`, callErr: true},
	{name: "data null", text: `{"id":9,"data":null}`, callErr: true},
	{name: "id overflows", text: `{"id":18446744073709551616,"data":{}}`, callErr: true},
	{name: "negative id", text: `{"id":-1,"data":{}}`, callErr: true},
	{name: "fractional id", text: `{"id":1.5,"data":{}}`, callErr: true},
	{name: "leading zero", text: `{"id":00,"data":{}}`, frameErr: "JSON malformed for opcode: -4"},
	{name: "one brace too many", text: `{"id":1,"data":{"a":1}}}`, frameErr: "JSON malformed for opcode: -4"},
	{name: "NUL padding", text: `{"id":1,"data":{}}` + "\x00", raw: true, frameErr: "JSON malformed for opcode: -4"},
}

// replyFailureCases are the reply failure frames, as requestCases; none is
// read in one pass.
var replyFailureCases = []callCase{
	{name: "own form", text: `{"id":9,"reason":"ArgumentMissing","message":"Expected argument 'b' in opcode 1"}`,
		want: codec.Call{ID: 9, Reason: "ArgumentMissing", Message: "Expected argument 'b' in opcode 1"}},
	{name: "spaced", text: `{"id": 9, "reason": "X", "message": "h\u00e9"}`, want: codec.Call{ID: 9, Reason: "X", Message: "hé"}},
	{name: "key order", text: `{"message":"m","reason":"R","id":9}`, want: codec.Call{ID: 9, Reason: "R", Message: "m"}},
	{name: "no reason or message", text: `{"id":9}`, want: codec.Call{ID: 9}},
	{name: "null reason", text: `{"id":9,"reason":null,"message":"m"}`, want: codec.Call{ID: 9, Message: "m"}},
	{name: "data is ignored", text: `{"id":9,"reason":"R","message":"m","data":{}}`, want: codec.Call{ID: 9, Reason: "R", Message: "m"}},
	{name: "no id", text: `{"reason":"X","message":""}`, callErr: true},
	{name: "reason a number", text: `{"id":9,"reason":1,"message":""}`, callErr: true},
	{name: "message an object", text: `{"id":9,"reason":"R","message":{}}`, callErr: true},
	{name: "id overflows", text: `{"id":18446744073709551616,"reason":"R","message":"m"}`, callErr: true},
	{name: "not closed", text: `{"id":9,"reason":"R"`, frameErr: "JSON malformed for opcode: -5"},
}

// checkCallCase checks DecodeFrame, and the two readers behind it, against
// tc.
func checkCallCase(t *testing.T, tc callCase) {
	t.Helper()
	frame := tc.frame()
	_, _, _, fast := codec.FastCall(frame)
	if fast != tc.fast {
		t.Errorf("read in one pass: %v, want %v", fast, tc.fast)
	}
	op, obj, call, err := codec.DecodeFrame(frame)
	checkSameAnswer(t, frame)
	dop, dobj, derr := codec.Decode(frame)
	switch {
	case tc.frameErr != "":
		checkMalformed(t, err, tc.frameErr, dop)
		if errors.Is(err, codec.ErrMalformedCall) {
			t.Errorf("a frame Decode refuses matches ErrMalformedCall: %v", err)
		}
		if derr == nil || err.Error() != derr.Error() || op != dop || obj != nil {
			t.Errorf("got (%d, %q, %v), want Decode's (%d, nil, %v)", op, obj, err, dop, derr)
		}
	case tc.callErr:
		msg := map[codec.Opcode]string{codec.OpRequest: "Malformed request frame", codec.OpReply: "Malformed reply frame",
			codec.OpReplyFailure: "Malformed reply failure frame"}[tc.op]
		checkMalformed(t, err, msg, tc.op)
		if !errors.Is(err, codec.ErrMalformedCall) {
			t.Errorf("errors.Is(%v, ErrMalformedCall) = false", err)
		}
		if derr != nil || op != tc.op || !bytes.Equal(obj, dobj) || !sameCall(call, codec.Call{}) {
			t.Errorf("got (%d, %q, %+v), want (%d, %q, a zero Call)", op, obj, call, tc.op, dobj)
		}
	default:
		if err != nil {
			t.Fatalf("error %v", err)
		}
		if op != tc.op || !bytes.Equal(obj, dobj) || !sameCall(call, tc.want) {
			t.Errorf("got (%d, %q, %s), want (%d, %q, %s)", op, obj, showCall(call), tc.op, dobj, showCall(tc.want))
		}
		if (tc.op == codec.OpReplyFailure) != (call.Data == nil) {
			t.Errorf("Data = %q", call.Data)
		}
	}
}

func TestDecodeFrameRequest(t *testing.T) {
	for _, tc := range requestCases {
		tc.op = codec.OpRequest
		t.Run(tc.name, func(t *testing.T) { checkCallCase(t, tc) })
	}
}

func TestDecodeFrameReply(t *testing.T) {
	for _, tc := range replyCases {
		tc.op = codec.OpReply
		t.Run(tc.name, func(t *testing.T) { checkCallCase(t, tc) })
	}
}

func TestDecodeFrameReplyFailure(t *testing.T) {
	for _, tc := range replyFailureCases {
		tc.op = codec.OpReplyFailure
		t.Run(tc.name, func(t *testing.T) { checkCallCase(t, tc) })
	}
}

// TestDecodeFrameCallOpcodes checks that only -3, -4 and -5 are call frames:
// an envelope under another opcode is an ordinary object.
func TestDecodeFrameCallOpcodes(t *testing.T) {
	for _, tc := range []struct {
		text       string
		op         codec.Opcode
		call, fast bool
	}{
		{`-3{"id":1,"op":0,"data":{}}`, codec.OpRequest, true, true},
		{`-4{"id":1,"op":0,"data":{}}`, codec.OpReply, true, false}, // op is not read in a reply
		{`-5{"id":1,"op":0,"data":{}}`, codec.OpReplyFailure, true, false},
		{`-03{"id":1,"op":0,"data":{}}`, codec.OpRequest, true, false}, // -3 to Decode, as to Python's int()
		{`-3 {"id":1,"op":0,"data":{}}`, codec.OpRequest, true, false},
		{`-2{"id":1,"op":0,"data":{}}`, codec.OpMessageSize, false, false},
		{`-6{"id":1,"op":0,"data":{}}`, codec.OpPing, false, false},
		{`3{"id":1,"op":0,"data":{}}`, 3, false, false},
		{`+3{"id":1,"op":0,"data":{}}`, 3, false, false},
		{`-33{"id":1,"op":0,"data":{}}`, -33, false, false},
	} {
		frame := []byte(tc.text)
		checkSameAnswer(t, frame)
		op, obj, call, err := codec.DecodeFrame(frame)
		_, _, _, fast := codec.FastCall(frame)
		if err != nil || op != tc.op || string(obj) != `{"id":1,"op":0,"data":{}}` || (call.ID == 1) != tc.call || fast != tc.fast {
			t.Errorf("%s: got (%d, %s, %s, %v), read in one pass %v", tc.text, op, obj, showCall(call), err, fast)
		}
	}
}

// TestDecodeFrameAgreesWithDecode checks that for every frame that is not a
// call frame, and every frame Decode refuses, DecodeFrame is Decode.
func TestDecodeFrameAgreesWithDecode(t *testing.T) {
	frames := fuzzSeeds(t)
	for _, g := range goldenVectors {
		frames = append(frames, []byte(g.original), []byte(g.ours))
	}
	for _, frame := range frames {
		op, obj, call, err := codec.DecodeFrame(frame)
		dop, dobj, derr := codec.Decode(frame)
		if derr == nil && dop >= codec.OpReplyFailure && dop <= codec.OpRequest {
			continue
		}
		if op != dop || unsafe.SliceData(obj) != unsafe.SliceData(dobj) || len(obj) != len(dobj) ||
			(err == nil) != (derr == nil) || err != nil && err.Error() != derr.Error() || !sameCall(call, codec.Call{}) {
			t.Errorf("%q: DecodeFrame (%d, %q, %s, %v), Decode (%d, %q, %v)", frame, op, obj, showCall(call), err, dop, dobj, derr)
		}
	}
}

// TestDecodeFrameStdJSON holds the general reading of the table's
// envelopes to encoding/json, an implementation independent of go-json.
func TestDecodeFrameStdJSON(t *testing.T) {
	for _, cases := range []struct {
		op    codec.Opcode
		cases []callCase
	}{{codec.OpRequest, requestCases}, {codec.OpReply, replyCases}, {codec.OpReplyFailure, replyFailureCases}} {
		for _, tc := range cases.cases {
			if tc.frameErr != "" {
				continue
			}
			tc.op = cases.op
			_, obj, call, err := codec.DecodeFrame(tc.frame())
			want, ok := stdCall(cases.op, obj)
			if (err == nil) != ok || ok && !sameCall(call, want) {
				t.Errorf("%s %s: got (%s, %v), encoding/json (%s, %v)", cases.op, tc.name, showCall(call), err, showCall(want), ok)
			}
		}
	}
}

// stdCall reads an envelope the way DecodeFrame's doc says, with
// encoding/json.
func stdCall(op codec.Opcode, obj []byte) (codec.Call, bool) {
	switch op {
	case codec.OpRequest:
		var m struct {
			ID   *uint64            `json:"id"`
			Op   *int32             `json:"op"`
			Data stdjson.RawMessage `json:"data"`
		}
		if stdjson.Unmarshal(obj, &m) != nil || m.ID == nil || m.Op == nil || len(m.Data) == 0 || m.Data[0] != '{' {
			return codec.Call{}, false
		}
		return codec.Call{ID: *m.ID, Op: codec.Opcode(*m.Op), Data: m.Data}, true
	case codec.OpReply:
		var m struct {
			ID   *uint64            `json:"id"`
			Data stdjson.RawMessage `json:"data"`
		}
		if stdjson.Unmarshal(obj, &m) != nil || m.ID == nil || len(m.Data) == 0 || m.Data[0] != '{' {
			return codec.Call{}, false
		}
		return codec.Call{ID: *m.ID, Data: m.Data}, true
	}
	var m struct {
		ID      *uint64 `json:"id"`
		Reason  string  `json:"reason"`
		Message string  `json:"message"`
	}
	if stdjson.Unmarshal(obj, &m) != nil || m.ID == nil {
		return codec.Call{}, false
	}
	return codec.Call{ID: *m.ID, Reason: m.Reason, Message: m.Message}, true
}

// checkSameAnswer fails the test unless DecodeFrame, its one-pass reader
// (when it takes the frame) and its general reader give the same answer.
func checkSameAnswer(t testing.TB, frame []byte) {
	t.Helper()
	op, obj, call, err := codec.DecodeFrame(frame)
	gop, gobj, gcall, gerr := codec.DecodeFrameGeneral(frame)
	if fop, fobj, fcall, ok := codec.FastCall(frame); ok {
		if gerr != nil || fop != gop || !bytes.Equal(fobj, gobj) || !sameCall(fcall, gcall) {
			t.Fatalf("%q: one pass (%d, %q, %s), general (%d, %q, %s, %v)", frame, fop, fobj, showCall(fcall), gop, gobj, showCall(gcall), gerr)
		}
		// Data is a sub-slice of the envelope, wherever its member is.
		off := uintptr(unsafe.Pointer(unsafe.SliceData(fcall.Data))) - uintptr(unsafe.Pointer(unsafe.SliceData(fobj)))
		if unsafe.SliceData(fobj) != &frame[2] || off >= uintptr(len(fobj)) || off+uintptr(len(fcall.Data)) > uintptr(len(fobj)) {
			t.Fatalf("%q: one pass does not borrow from the frame", frame)
		}
	}
	if op != gop || !bytes.Equal(obj, gobj) || !sameCall(call, gcall) || (err == nil) != (gerr == nil) ||
		err != nil && (err.Error() != gerr.Error() || errors.Is(err, codec.ErrMalformedCall) != errors.Is(gerr, codec.ErrMalformedCall)) {
		t.Fatalf("%q: DecodeFrame (%d, %q, %s, %v), general (%d, %q, %s, %v)", frame, op, obj, showCall(call), err, gop, gobj, showCall(gcall), gerr)
	}
}

func sameCall(a, b codec.Call) bool {
	return a.ID == b.ID && a.Op == b.Op && bytes.Equal(a.Data, b.Data) && (a.Data == nil) == (b.Data == nil) &&
		a.Reason == b.Reason && a.Message == b.Message
}

func showCall(c codec.Call) string {
	return fmt.Sprintf("{ID:%d Op:%d Data:%q Reason:%q Message:%q}", c.ID, c.Op, c.Data, c.Reason, c.Message)
}

// callData is a data object with strings, escapes, numbers and nesting.
const callData = `{"t":"0000000000000000001","user":"u\"}\\","tags":["a","b"],"pos":{"x":1.5,"y":-2e-3},"ok":true,"n":null}`

func TestAppendRequest(t *testing.T) {
	data := []byte(`{"s":"x\"}\\","n":[1,2,{}]}`)
	req := codec.AppendRequest([]byte("prefix"), 42, 7, data)
	if want := `prefix{"id":42,"op":7,"data":{"s":"x\"}\\","n":[1,2,{}]}}`; string(req) != want {
		t.Fatalf("AppendRequest = %s, want %s", req, want)
	}
	rep := codec.AppendReply([]byte("prefix"), 43, data)
	if want := `prefix{"id":43,"data":{"s":"x\"}\\","n":[1,2,{}]}}`; string(rep) != want {
		t.Fatalf("AppendReply = %s, want %s", rep, want)
	}
	if got := codec.AppendRequest(nil, math.MaxUint64, math.MinInt32, []byte(`{}`)); string(got) != `{"id":18446744073709551615,"op":-2147483648,"data":{}}` {
		t.Fatalf("AppendRequest at the limits = %s", got)
	}
}

// TestDecodeFrameOwnFrames checks that the frames simplerpc writes are read
// in one pass, without allocating, and read back what was written:
// otherwise the one-pass reader would be dead code only its tests run.
func TestDecodeFrameOwnFrames(t *testing.T) {
	datas := []string{`{}`, callData, `{"é":"☃"}`, `{"a":` + deepObject(510) + `}`}
	for _, id := range []uint64{0, 1, 123456789, 1<<53 + 1, math.MaxUint64} {
		for _, callOp := range []codec.Opcode{0, 5, math.MaxInt32, -1, math.MinInt32} {
			for _, data := range datas {
				for _, op := range []codec.Opcode{codec.OpRequest, codec.OpReply} {
					var obj []byte
					want := codec.Call{ID: id, Data: []byte(data)}
					if op == codec.OpRequest {
						obj = codec.AppendRequest(nil, id, callOp, []byte(data))
						want.Op = callOp
					} else {
						obj = codec.AppendReply(nil, id, []byte(data))
					}
					frame, err := codec.AppendValidated(nil, 4096, op, obj)
					if err != nil {
						t.Fatal(err)
					}
					gotOp, gotObj, call, ok := codec.FastCall(frame)
					if !ok || gotOp != op || !bytes.Equal(gotObj, obj) || !sameCall(call, want) {
						t.Fatalf("%.80q: one pass (%d, %s, %v), want (%d, %s)", frame, gotOp, showCall(call), ok, op, showCall(want))
					}
					checkSameAnswer(t, frame)
				}
			}
		}
	}
}

// TestDecodeFrameAllocs checks that requests and replies in simplerpc's own
// form are read, and built into a reused buffer, without allocating.
func TestDecodeFrameAllocs(t *testing.T) {
	data := []byte(callData)
	buf := make([]byte, 0, 1024)
	for _, f := range []struct {
		op  codec.Opcode
		obj []byte
	}{
		{codec.OpRequest, codec.AppendRequest(nil, 123456, 2, data)},
		{codec.OpReply, codec.AppendReply(nil, 123456, data)},
		// Other peers' layouts.
		{codec.OpRequest, fmt.Appendf(nil, `{"id": 123456, "op": 2, "data": %s}`, data)},
		{codec.OpRequest, fmt.Appendf(nil, `{"data": %s, "op": 2, "x": {"y": [1]}, "id": 123456}`, data)},
		{codec.OpReply, fmt.Appendf(nil, `{ "data" : %s , "id" : 123456 }`, data)},
	} {
		op := f.op
		frame, err := codec.AppendValidated(nil, 1024, op, f.obj)
		if err != nil {
			t.Fatal(err)
		}
		var sink int
		if n := testing.AllocsPerRun(100, func() {
			op, obj, call, err := codec.DecodeFrame(frame)
			if err != nil {
				panic(err)
			}
			sink += int(op) + len(obj) + len(call.Data)
		}); n != 0 {
			t.Errorf("DecodeFrame(%s %s): %v allocs/op, want 0", op, f.obj[:20], n)
		}
		if n := testing.AllocsPerRun(100, func() {
			if op == codec.OpRequest {
				buf = codec.AppendRequest(buf[:0], 123456, 2, data)
			} else {
				buf = codec.AppendReply(buf[:0], 123456, data)
			}
		}); n != 0 {
			t.Errorf("append the envelope of %s: %v allocs/op, want 0", op, n)
		}
	}
}

// callSeeds are the call frames of the tables, the seeds of the engine's
// fuzz targets for its former envelope readers, and hostile variants.
func callSeeds() [][]byte {
	var seeds [][]byte
	for _, c := range []struct {
		op    codec.Opcode
		cases []callCase
	}{{codec.OpRequest, requestCases}, {codec.OpReply, replyCases}, {codec.OpReplyFailure, replyFailureCases}} {
		for _, tc := range c.cases {
			tc.op = c.op
			seeds = append(seeds, tc.frame())
		}
	}
	for _, obj := range []string{ // FuzzParseRequest's, as frames of each kind
		`{"id":1,"op":0,"data":{}}`,
		`{"id":7,"op":3,"data":{"s":"a\"}b\\","t":[{"u":"]"}]}}`,
		`{"id":7,"op":3,"data":{},"x":{}}`,
		`{"id":7,"op":3,"data":{"a":"\\"},"b":"}"}`,
		`{"id":99999999999999999999,"op":3,"data":{}}`,
	} {
		for _, op := range []string{"-3", "-4", "-5"} {
			seeds = append(seeds, []byte(op+obj))
		}
	}
	for _, s := range []string{ // FuzzFastCall's
		`-3{"id":1,"op":0,"data":{}}   `,
		`-4{"id":7,"data":{"s":"a\"}b\\","t":[{"u":"]"}]}}  `,
		`-3{"id":7,"op":3,"data":{},"x":{}}`,
		`-4{"id":7,"data":{"a":"\\"},"b":"}"}`,
		`-3{"id":99999999999999999999,"op":3,"data":{}}`,
		`-3{"id":0,"op":0,"data":{"a":[1e5,-0.5,true,null]}}  `,
		// Other peers' layouts (Python's json.dumps) and their near misses.
		`-3{"id": 1, "op": 7, "data": {"a": [1, 2]}}   `,
		`-4{"data": {"x": "y"}, "id": 5}`,
		`-3{"op": 2, "id": 3, "x": {"y": null}, "data": {}, "z": "w", "t": true, "n": -1.5e3}`,
		`-3{"Id": 1, "op": 7, "data": {}}`, `-4{"id": 1, "dAta": {}}`, `-3{"i\u0064": 1, "op": 7, "data": {}}`,
		`-3{"id": 1.0, "op": 7, "data": {}}`, `-3{"id": 1 , "op": 7e0, "data": {}}`, `-3{"id": 1, "op": 7, "data": {}, "x": [1]}`,
		`-3{"é": 1, "id": 1, "op": 7, "data": {}}`, `-3{"id": 1, "op": 7, "data": {}, "id": 2, "data": {"b": 1}}`,
		`-3{"id":1,"op":7,"data":{},}`, `-3{,"id":1,"op":7,"data":{}}`, `-3{"id":1 "op":7,"data":{}}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	for _, s := range []string{
		`-3{"id":1,"op":-,"data":{}}`, `-3{"id":1,"op":-01,"data":{}}`, `-3{"id":,"op":1,"data":{}}`,
		`-3{"id":1,"op":1,"data":{}`, `-3{"id":1,"op":1,"data":`, `-3{"id":1,"op":1,"data"`, `-3{"id":1`, `-3{`, `-3`, `-`,
		`-4{"id":1,"data":{"a":"\ud800"}}`, `-4{"id":1,"data":{"a":"\u00"}}`, `-4{"id":1,"data":{"a":1}, "data":{}}`,
		`-5{"id":1,"reason":"\ud83d\ude00","message":"\u0000"}`, `-5{"id":1,"reason":"` + strings.Repeat("x", 300) + `"}`,
		`-3{"id":184467440737095516150,"op":0,"data":{}}`, `-3{"id":1,"op":21474836470,"data":{}}`,
		`-3{"id":1,"op":0,"data":{"a":1}} ` + "\t\n\r\v\f", `-4{"id":1,"data":{}}` + strings.Repeat(" ", 1000),
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzDecodeFrame holds DecodeFrame's one-pass reader to its general one:
// for whatever frame the first takes, the second must give the same answer,
// and DecodeFrame is the general reader on every frame. It also checks what
// DecodeFrame promises of its errors, that the data of a call is a valid
// object, that a decoded call rebuilt with AppendRequest or AppendReply is
// read in one pass to the same call, and that other frames are Decode's.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range callSeeds() {
		f.Add(s)
	}
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		checkSameAnswer(t, frame)
		op, obj, call, err := codec.DecodeFrame(frame)
		dop, dobj, derr := codec.Decode(frame)
		isCall := derr == nil && op >= codec.OpReplyFailure && op <= codec.OpRequest
		if !isCall {
			if op != dop || !bytes.Equal(obj, dobj) || (err == nil) != (derr == nil) || err != nil && err.Error() != derr.Error() ||
				!sameCall(call, codec.Call{}) {
				t.Fatalf("%q: DecodeFrame (%d, %q, %s, %v), Decode (%d, %q, %v)", frame, op, obj, showCall(call), err, dop, dobj, derr)
			}
			if errors.Is(err, codec.ErrMalformedCall) {
				t.Fatalf("%q: a frame Decode refuses matches ErrMalformedCall", frame)
			}
			return
		}
		if op != dop || !bytes.Equal(obj, dobj) {
			t.Fatalf("%q: DecodeFrame (%d, %q), Decode (%d, %q)", frame, op, obj, dop, dobj)
		}
		if err != nil {
			var me *codec.MalformedError
			if !errors.As(err, &me) || !errors.Is(err, codec.ErrMalformed) || !errors.Is(err, codec.ErrMalformedCall) ||
				me.Op != op || me.Message == "" || !sameCall(call, codec.Call{}) {
				t.Fatalf("%q: envelope error %T %v, call %s", frame, err, err, showCall(call))
			}
			return
		}
		size := len(frame) + 64
		var rebuilt []byte
		switch op {
		case codec.OpRequest, codec.OpReply:
			if d, err := codec.Object(call.Data); err != nil || !bytes.Equal(d, call.Data) {
				t.Fatalf("%q: Data %q is not a trimmed object: %v", frame, call.Data, err)
			}
			env := codec.AppendReply(nil, call.ID, call.Data)
			if op == codec.OpRequest {
				env = codec.AppendRequest(nil, call.ID, call.Op, call.Data)
			}
			rebuilt, err = codec.AppendValidated(nil, size, op, env)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, again, ok := codec.FastCall(rebuilt); !ok || !sameCall(again, call) {
				t.Fatalf("%q: rebuilt %q read in one pass as (%s, %v), want %s", frame, rebuilt, showCall(again), ok, showCall(call))
			}
		case codec.OpReplyFailure:
			id := call.ID
			size = 6*(len(call.Reason)+len(call.Message)) + 64
			rebuilt, err = codec.AppendFailureOp(nil, size, op, &id, call.Reason, call.Message)
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, _, again, err := codec.DecodeFrame(rebuilt); err != nil || !sameCall(again, call) {
			t.Fatalf("%q: rebuilt %q read as (%s, %v), want %s", frame, rebuilt, showCall(again), err, showCall(call))
		}
	})
}
