package cluster

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
)

func TestWireRoundTrip(t *testing.T) {
	id := uint64(2)<<counterBits | 99 // net id 99 of node 2
	cases := []struct {
		msg  []byte
		want envelope
	}{
		{appendPresence(nil, kindBeat, 3, 77, 12, "127.0.0.1:1"), envelope{kind: kindBeat, node: 3, epoch: 77, count: 12, addr: "127.0.0.1:1"}},
		{appendHeader(nil, kindBye, 3, 77), envelope{kind: kindBye, node: 3, epoch: 77}},
		{appendFrame(nil, kindSend, 1, 2, id, 7, "", []byte(`{"a":1}`)), envelope{kind: kindSend, node: 1, epoch: 2, id: id, op: 7, obj: []byte(`{"a":1}`)}},
		{appendFrame(nil, kindGroup, 1, 2, id, 0, "room", []byte(`{}`)), envelope{kind: kindGroup, node: 1, epoch: 2, id: id, op: 0, group: "room", obj: []byte(`{}`)}},
		{appendFrame(nil, kindAll, 1, 2, 0, 1, "", []byte(`{}`)), envelope{kind: kindAll, node: 1, epoch: 2, op: 1, obj: []byte(`{}`)}},
		{appendCall(nil, 1, 2, id, 8, 1500*time.Millisecond, []byte(`{}`)), envelope{kind: kindCall, node: 1, epoch: 2, id: id, op: 8, timeout: 1500 * time.Millisecond, obj: []byte(`{}`)}},
		{appendQuery(nil, 1, 2, queryMembers, "room"), envelope{kind: kindQuery, node: 1, epoch: 2, query: queryMembers, group: "room"}},
		{appendQuery(nil, 1, 2, queryIdentity, "alice"), envelope{kind: kindQuery, node: 1, epoch: 2, query: queryIdentity, group: "alice"}},
		{appendClose(nil, 1, 2, id), envelope{kind: kindClose, node: 1, epoch: 2, id: id}},
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

// TestWireBounds checks that decode refuses what no node sends: protocol
// opcodes, ids and epochs no node has, oversized or broken objects, odd
// presence fields.
func TestWireBounds(t *testing.T) {
	id := uint64(2)<<counterBits | 99
	big := make([]byte, codec.MaxMessageSize+1)
	big[0], big[len(big)-1] = '{', '}'
	for i := 1; i < len(big)-1; i++ {
		big[i] = ' '
	}
	for _, c := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"send -2", appendFrame(nil, kindSend, 1, 2, id, codec.OpMessageSize, "", []byte(`{"message_size":64}`)), errProtocolOp},
		{"all -8", appendFrame(nil, kindAll, 1, 2, 0, codec.OpGoAway, "", []byte(`{}`)), errProtocolOp},
		{"group -1", appendFrame(nil, kindGroup, 1, 2, 0, codec.OpFailure, "room", []byte(`{}`)), errProtocolOp},
		{"call -3", appendCall(nil, 1, 2, id, codec.OpRequest, time.Second, []byte(`{}`)), errProtocolOp},
		{"send to id 0", appendFrame(nil, kindSend, 1, 2, 0, 1, "", []byte(`{}`)), errBadID},
		{"send to an id of node 0", appendFrame(nil, kindSend, 1, 2, 99, 1, "", []byte(`{}`)), errBadID},
		{"all except an id of node 0", appendFrame(nil, kindAll, 1, 2, 99, 1, "", []byte(`{}`)), errBadID},
		{"call to id 0", appendCall(nil, 1, 2, 0, 1, time.Second, []byte(`{}`)), errBadID},
		{"identity query without its identity", appendQuery(nil, 1, 2, queryIdentity, ""), errMalformed},
		{"close of id 0", appendClose(nil, 1, 2, 0), errBadID},
		{"epoch 0", appendHeader(nil, kindBye, 1, 0), errBadEpoch},
		{"epoch past the counter", appendHeader(nil, kindBye, 1, counterMask+1), errBadEpoch},
		{"object too large", appendFrame(nil, kindAll, 1, 2, 0, 1, "", big), errTooLarge},
		{"object cut", appendFrame(nil, kindAll, 1, 2, 0, 1, "", []byte(`{"a":`)), errObject},
		{"object and more", appendFrame(nil, kindAll, 1, 2, 0, 1, "", []byte(`{} {}`)), errObject},
		{"a list", appendFrame(nil, kindAll, 1, 2, 0, 1, "", []byte(`[1]`)), errObject},
		{"a long address", appendPresence(nil, kindBeat, 1, 2, 1, string(make([]byte, maxAddr+1))), errBadAddr},
		{"an address with a newline", appendPresence(nil, kindBeat, 1, 2, 1, "127.0.0.1:1\nforged=1"), errBadAddr},
		{"an address not UTF-8", appendPresence(nil, kindHello, 1, 2, 1, "\xff"), errBadAddr},
		{"too many connections", appendPresence(nil, kindHello, 1, 2, maxConns+1, ""), errBadConns},
		{"node 0", appendHeader(nil, kindBye, 0, 2), errMalformed},
		{"node 1024", appendHeader(nil, kindBye, MaxNode+1, 2), errMalformed},
		{"a bye with a tail", append(appendHeader(nil, kindBye, 1, 2), 0), errLong},
	} {
		_, err := decode(c.msg)
		if !errors.Is(err, c.want) || !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
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
		appendQuery(nil, 1, 2, queryLen, ""),
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
		if e.node < 1 || e.node > MaxNode || e.kind == 0 || e.kind >= kindEnd || e.epoch == 0 || e.epoch > counterMask {
			t.Fatalf("accepted %+v", e)
		}
		switch e.kind {
		case kindSend, kindAll, kindGroup, kindCall:
			if e.op < 0 {
				t.Fatalf("accepted opcode %d", e.op)
			}
			if len(e.obj) < 2 || e.obj[0] != '{' {
				t.Fatalf("accepted object %q", e.obj)
			}
		}
	})
}
