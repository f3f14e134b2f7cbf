package engine

import (
	"bytes"
	"strings"
	"testing"

	"github.com/goccy/go-json"

	"github.com/simplerpc/simplerpc/codec"
)

// goRequest and goReply decode envelopes the general way, as the reference
// the hand-written reader must agree with.
func goRequest(obj []byte) (request, bool) {
	var m struct {
		ID   *uint64         `json:"id"`
		Op   *int32          `json:"op"`
		Data json.RawMessage `json:"data"`
	}
	if json.Unmarshal(obj, &m) != nil || m.ID == nil || m.Op == nil || len(m.Data) == 0 || m.Data[0] != '{' {
		return request{}, false
	}
	return request{id: *m.ID, op: codec.Opcode(*m.Op), data: m.Data}, true
}

func TestParseRequest(t *testing.T) {
	cases := []struct {
		obj  string
		fast bool // read by the hand-written path
		ok   bool
		id   uint64
		op   codec.Opcode
		data string
	}{
		{`{"id":1,"op":0,"data":{}}`, true, true, 1, 0, `{}`},
		{`{"id":18446744073709551615,"op":2147483647,"data":{"a":[1,{"b":"}"}]}}`, true, true, 18446744073709551615, 2147483647, `{"a":[1,{"b":"}"}]}`},
		{`{"id":7,"op":3,"data":{"s":"a\"}b\\","t":"\\\\"}}`, true, true, 7, 3, `{"s":"a\"}b\\","t":"\\\\"}`},
		{`{"id":7,"op":3,"data":{"s":"\\\"}\\"}}`, true, true, 7, 3, `{"s":"\\\"}\\"}`},
		// Other forms: go-json decides.
		{`{"op":3,"id":7,"data":{}}`, false, true, 7, 3, `{}`},
		{`{"id":7, "op":3,"data":{}}`, false, true, 7, 3, `{}`},
		{`{"id":7,"op":3,"data":{},"x":1}`, false, true, 7, 3, `{}`},
		{`{"id":7,"op":3,"data":{"a":1},"data":{"b":2}}`, false, true, 7, 3, `{"b":2}`},
		{`{"id":7,"op":3,"data":{}, "id":8}`, false, true, 8, 3, `{}`},
		// Refused.
		{`{"id":18446744073709551616,"op":3,"data":{}}`, false, false, 0, 0, ``},
		{`{"id":7,"op":2147483648,"data":{}}`, false, false, 0, 0, ``},
		{`{"id":-7,"op":3,"data":{}}`, false, false, 0, 0, ``},
		{`{"id":7,"op":-3,"data":{}}`, false, true, 7, -3, `{}`},
		{`{"id":7.5,"op":3,"data":{}}`, false, false, 0, 0, ``},
		{`{"id":7,"op":3,"data":[]}`, false, false, 0, 0, ``},
		{`{"id":7,"op":3,"data":null}`, false, false, 0, 0, ``},
		{`{"id":7,"op":3}`, false, false, 0, 0, ``},
		{`{"op":3,"data":{}}`, false, false, 0, 0, ``},
		{`{"id":7,"data":{}}`, false, false, 0, 0, ``},
		{`{"id":"7","op":3,"data":{}}`, false, false, 0, 0, ``},
	}
	for _, tc := range cases {
		_, fast := fastEnvelope([]byte(tc.obj), true)
		if fast != tc.fast {
			t.Errorf("%s: read by hand %v, want %v", tc.obj, fast, tc.fast)
		}
		r, ok := parseRequest([]byte(tc.obj))
		if ok != tc.ok || r.id != tc.id || r.op != tc.op || string(r.data) != tc.data {
			t.Errorf("%s: got (%d, %d, %s, %v), want (%d, %d, %s, %v)", tc.obj, r.id, r.op, r.data, ok, tc.id, tc.op, tc.data, tc.ok)
		}
	}
}

func TestParseReply(t *testing.T) {
	cases := []struct {
		obj     string
		failure bool
		ok      bool
		id      uint64
		data    string
		reason  string
	}{
		{`{"id":9,"data":{"n":1}}`, false, true, 9, `{"n":1}`, ``},
		{`{"data":{"n":1},"id":9}`, false, true, 9, `{"n":1}`, ``},
		{`{"id":9,"op":1,"data":{"n":1}}`, false, true, 9, `{"n":1}`, ``},
		{`{"id":9,"reason":"ArgumentMissing","message":"m"}`, true, true, 9, ``, `ArgumentMissing`},
		{`{"id":"9","data":{}}`, false, false, 0, ``, ``},
	}
	for _, tc := range cases {
		r, ok := parseReply([]byte(tc.obj), tc.failure)
		if ok != tc.ok || r.id != tc.id || string(r.data) != tc.data || r.reason != tc.reason {
			t.Errorf("%s: got (%d, %s, %q, %v), want (%d, %s, %q, %v)", tc.obj, r.id, r.data, r.reason, ok, tc.id, tc.data, tc.reason, tc.ok)
		}
	}
}

func TestAppendEnvelopeRoundTrip(t *testing.T) {
	data := []byte(`{"s":"x\"}\\","n":[1,2,{}]}`)
	req := appendEnvelope(nil, 42, 7, data)
	if want := `{"id":42,"op":7,"data":{"s":"x\"}\\","n":[1,2,{}]}}`; string(req) != want {
		t.Fatalf("request %s, want %s", req, want)
	}
	r, ok := fastEnvelope(req, true)
	if !ok || r.id != 42 || r.op != 7 || !bytes.Equal(r.data, data) {
		t.Fatalf("request read back as (%d, %d, %s, %v)", r.id, r.op, r.data, ok)
	}
	rep := appendEnvelope(nil, 43, -1, data)
	p, ok := parseReply(rep, false)
	if !ok || p.id != 43 || !bytes.Equal(p.data, data) {
		t.Fatalf("reply read back as (%d, %s, %v)", p.id, p.data, ok)
	}
}

func TestParseRequestAllocs(t *testing.T) {
	obj := appendEnvelope(nil, 123456, 2, []byte(`{"t":"0000000000000000001","user":"u","tags":["a","b"]}`))
	if n := testing.AllocsPerRun(100, func() { _, _ = parseRequest(obj) }); n != 0 {
		t.Fatalf("parseRequest allocates %.0f times, want 0", n)
	}
}

// FuzzParseRequest checks the hand-written reader against go-json on any
// valid object: where it answers, it must give go-json's answer.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":0,"data":{}}`,
		`{"id":7,"op":3,"data":{"s":"a\"}b\\","t":[{"u":"]"}]}}`,
		`{"id":7,"op":3,"data":{},"x":{}}`,
		`{"id":7,"op":3,"data":{"a":"\\"},"b":"}"}`,
		`{"id":99999999999999999999,"op":3,"data":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		obj, err := codec.Object(b)
		if err != nil {
			return
		}
		want, wantOK := goRequest(obj)
		if got, ok := fastEnvelope(obj, true); ok {
			if !wantOK || got.id != want.id || got.op != want.op || !bytes.Equal(got.data, want.data) {
				t.Fatalf("%s: by hand (%d, %d, %s), go-json (%d, %d, %s, %v)", obj, got.id, got.op, got.data, want.id, want.op, want.data, wantOK)
			}
		}
		got, ok := parseRequest(obj)
		if ok != wantOK || got.id != want.id || got.op != want.op || !bytes.Equal(got.data, want.data) {
			t.Fatalf("%s: parseRequest (%d, %d, %s, %v), go-json (%d, %d, %s, %v)", obj, got.id, got.op, got.data, ok, want.id, want.op, want.data, wantOK)
		}
	})
}

// generalCall reads a call frame the general way (codec.Decode, then
// parseRequest or parseReply): the reference fastCall must agree with.
func generalCall(frame []byte) (op codec.Opcode, obj []byte, r request, ok bool) {
	op, obj, err := codec.Decode(frame)
	if err != nil {
		return 0, nil, r, false
	}
	switch op {
	case codec.OpRequest:
		r, ok = parseRequest(obj)
	case codec.OpReply:
		var p reply
		p, ok = parseReply(obj, false)
		r = request{id: p.id, data: p.data}
	}
	return op, obj, r, ok
}

func TestFastCall(t *testing.T) {
	pad := func(s string) []byte { return append([]byte(s), bytes.Repeat([]byte(" "), 64)...) }
	cases := []struct {
		frame string
		fast  bool // taken by fastCall; otherwise left to the general path
	}{
		{`-3{"id":1,"op":0,"data":{}}`, true},
		{`-3{"id":18446744073709551615,"op":2147483647,"data":{"a":[1,{"b":"}"}]}}`, true},
		{`-4{"id":7,"data":{"s":"a\"}b\\"}}`, true},
		{`-4{"id":0,"data":{"é":"ü"}}`, true},
		{`-3{"id":01,"op":0,"data":{}}`, false},                      // leading zero: malformed
		{`-3{"id":1,"op":00,"data":{}}`, false},                      // leading zero: malformed
		{`-3{"id":1,"op":2147483648,"data":{}}`, false},              // op beyond int32
		{`-3{"id":18446744073709551616,"op":0,"data":{}}`, false},    // id overflows
		{`-3{"id":1,"op":0,"data":{}, "x":1}`, false},                // extra key
		{`-3{"id":1,"op":0,"data":{}}x`, false},                      // trailing data
		{`-3{"id":1,"op":0,"data":{"a":}}`, false},                   // malformed data
		{`-3{"id":1,"op":0,"data":{"a":"\xff"}}`, false},             // invalid UTF-8
		{`-3{"id":1,"op":0,"data":{}`, false},                        // envelope not closed
		{`-3{"op":0,"id":1,"data":{}}`, false},                       // another key order
		{`-3 {"id":1,"op":0,"data":{}}`, false},                      // white space
		{"-4{\"id\":1,\"data\":{}}\t", false},                        // a tab in the padding
		{`-5{"id":1,"reason":"InternalError","message":"x"}`, false}, // reply failure
		{`-4{"id":1,"data":{"a":1}}}`, false},                        // one brace too many
		{`-3{"id":-1,"op":0,"data":{}}`, false},                      // negative id
		{`-3{"id":1.0,"op":0,"data":{}}`, false},                     // fractional id
		{`-3{"id":1,"op":0,"data":[]}`, false},                       // data not an object
		{`0{"id":1,"op":0,"data":{}}`, false},                        // not a call
		{`-3{"id":1,"op":0,"data":` + deepObject(511) + `}`, true},   // 512 levels in all
		{`-3{"id":1,"op":0,"data":` + deepObject(512) + `}`, false},  // 513: too deep
	}
	for _, tc := range cases {
		frame := pad(tc.frame)
		op, obj, r, ok := fastCall(frame)
		if ok != tc.fast {
			t.Errorf("%s: fastCall ok = %v, want %v", tc.frame, ok, tc.fast)
			continue
		}
		gop, gobj, gr, gok := generalCall(frame)
		if ok && (!gok || op != gop || !bytes.Equal(obj, gobj) || r.id != gr.id || r.op != gr.op || !bytes.Equal(r.data, gr.data)) {
			t.Errorf("%s: fastCall (%d, %s, %d, %d, %s), general (%d, %s, %d, %d, %s, %v)",
				tc.frame, op, obj, r.id, r.op, r.data, gop, gobj, gr.id, gr.op, gr.data, gok)
		}
	}
}

// deepObject is n nested objects: {"a":{"a":…{}…}}.
func deepObject(n int) string {
	return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1)
}

// TestFastCallOwnFrames checks that the frames simplerpc writes take the
// fast path: otherwise it would be dead code that only its tests run.
func TestFastCallOwnFrames(t *testing.T) {
	data := []byte(`{"t":"0000000000000000001","user":"u","tags":["a","b"],"pos":{"x":1.5}}`)
	for _, op := range []codec.Opcode{codec.OpRequest, codec.OpReply} {
		callOp := codec.Opcode(5)
		if op == codec.OpReply {
			callOp = -1
		}
		frame, err := codec.AppendValidated(nil, 256, op, appendEnvelope(nil, 123456789, callOp, data))
		if err != nil {
			t.Fatal(err)
		}
		gotOp, _, r, ok := fastCall(frame)
		if !ok || gotOp != op || r.id != 123456789 || !bytes.Equal(r.data, data) || op == codec.OpRequest && r.op != 5 {
			t.Fatalf("op %d: fastCall = (%d, %+v, %v)", op, gotOp, r, ok)
		}
		if n := testing.AllocsPerRun(100, func() { _, _, _, _ = fastCall(frame) }); n != 0 {
			t.Fatalf("fastCall allocates %.0f times, want 0", n)
		}
	}
}

// FuzzFastCall holds the one-pass reader of call frames to the general
// one: whatever frame it accepts, codec.Decode and parseRequest or
// parseReply must read the same way.
func FuzzFastCall(f *testing.F) {
	for _, s := range []string{
		`-3{"id":1,"op":0,"data":{}}   `,
		`-4{"id":7,"data":{"s":"a\"}b\\","t":[{"u":"]"}]}}  `,
		`-3{"id":7,"op":3,"data":{},"x":{}}`,
		`-4{"id":7,"data":{"a":"\\"},"b":"}"}`,
		`-3{"id":99999999999999999999,"op":3,"data":{}}`,
		`-3{"id":0,"op":0,"data":{"a":[1e5,-0.5,true,null]}}  `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		op, obj, r, ok := fastCall(frame)
		if !ok {
			return
		}
		gop, gobj, gr, gok := generalCall(frame)
		if !gok || op != gop || !bytes.Equal(obj, gobj) || r.id != gr.id || r.op != gr.op || !bytes.Equal(r.data, gr.data) {
			t.Fatalf("%q: fastCall (%d, %s, %d, %d, %s), general (%d, %s, %d, %d, %s, %v)",
				frame, op, obj, r.id, r.op, r.data, gop, gobj, gr.id, gr.op, gr.data, gok)
		}
	})
}
