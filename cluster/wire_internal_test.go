package cluster

import (
	"bytes"
	"testing"
	"time"
)

func TestWireRoundTrip(t *testing.T) {
	cases := []struct {
		msg  []byte
		want envelope
	}{
		{appendPresence(nil, kindBeat, 3, 77, 12, "127.0.0.1:1"), envelope{kind: kindBeat, node: 3, epoch: 77, count: 12, addr: "127.0.0.1:1"}},
		{appendHeader(nil, kindBye, 3, 77), envelope{kind: kindBye, node: 3, epoch: 77}},
		{appendFrame(nil, kindSend, 1, 2, 99, 7, "", []byte(`{"a":1}`)), envelope{kind: kindSend, node: 1, epoch: 2, id: 99, op: 7, obj: []byte(`{"a":1}`)}},
		{appendFrame(nil, kindGroup, 1, 2, 5, -1, "room", []byte(`{}`)), envelope{kind: kindGroup, node: 1, epoch: 2, id: 5, op: -1, group: "room", obj: []byte(`{}`)}},
		{appendCall(nil, 1, 2, 99, 8, 1500*time.Millisecond, []byte(`{}`)), envelope{kind: kindCall, node: 1, epoch: 2, id: 99, op: 8, timeout: 1500 * time.Millisecond, obj: []byte(`{}`)}},
		{appendQuery(nil, 1, 2, queryMembers, "room", 0), envelope{kind: kindQuery, node: 1, epoch: 2, query: queryMembers, group: "room"}},
		{appendQuery(nil, 1, 2, queryLookup, "", 42), envelope{kind: kindQuery, node: 1, epoch: 2, query: queryLookup, id: 42}},
		{appendReply(nil, 1, 2, statusFailure, nil, "ArgumentMissing", "no x"), envelope{kind: kindReply, node: 1, epoch: 2, status: statusFailure, reason: "ArgumentMissing", text: []byte("no x")}},
		{appendReply(nil, 1, 2, statusOK, []byte(`{"s":1}`), "", ""), envelope{kind: kindReply, node: 1, epoch: 2, obj: []byte(`{"s":1}`)}},
	}
	for _, c := range cases {
		got, err := decode(c.msg)
		if err != nil {
			t.Errorf("%v: %v", c.want.kind, err)
			continue
		}
		if got.kind != c.want.kind || got.node != c.want.node || got.epoch != c.want.epoch || got.id != c.want.id ||
			got.op != c.want.op || got.group != c.want.group || got.timeout != c.want.timeout || got.query != c.want.query ||
			got.status != c.want.status || got.reason != c.want.reason || got.count != c.want.count || got.addr != c.want.addr ||
			!bytes.Equal(got.obj, c.want.obj) || !bytes.Equal(got.text, c.want.text) {
			t.Errorf("%v: got %+v, want %+v", c.want.kind, got, c.want)
		}
	}
}

// FuzzDecode checks that no input makes decode panic, and that what it
// accepts carries a valid object where its kind has one.
func FuzzDecode(f *testing.F) {
	for _, seed := range [][]byte{
		appendPresence(nil, kindHello, 3, 77, 12, "127.0.0.1:1"),
		appendFrame(nil, kindSend, 1, 2, 99, 7, "", []byte(`{"a":[1,2,{"b":null}]}`)),
		appendFrame(nil, kindGroup, 1, 2, 5, 1, "room", []byte(`{}`)),
		appendCall(nil, 1, 2, 99, 8, time.Second, []byte(`{}`)),
		appendQuery(nil, 1, 2, queryLen, "", 0),
		appendReply(nil, 1, 2, statusOther, nil, "", "boom"),
		appendAnswer(nil, 1, 2, statusOK),
		{}, {1}, {1, 7, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},
		appendFrame(nil, kindSend, 1, 2, 99, 7, "", []byte(`{"a":`)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decode(b)
		if err != nil {
			return
		}
		if e.node < 1 || e.node > MaxNode || e.kind == 0 || e.kind >= kindEnd {
			t.Fatalf("accepted %+v", e)
		}
		switch e.kind {
		case kindSend, kindAll, kindGroup, kindCall:
			if len(e.obj) < 2 || e.obj[0] != '{' {
				t.Fatalf("accepted object %q", e.obj)
			}
		}
	})
}
