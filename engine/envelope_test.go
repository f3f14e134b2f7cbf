package engine

import (
	"bytes"
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
