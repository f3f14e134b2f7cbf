// This file tests that the frames a handover carried to a successor go to
// each adopted connection in one write per round, not one write each,
// counting the writes.

package engine

import (
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/internal/handoverwire"
)

func TestCarriedFramesOneWritePerConn(t *testing.T) {
	const size, k = 64, 8
	srv, peers, ids := fanServer(t, size, 2, 0)
	l := theLoop(t, srv)
	var conns []*conn
	for _, id := range ids {
		c, err := srv.lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	frame := func(n int) []byte {
		f, err := codec.Append(nil, size, 3, map[string]int{"n": n})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// Connection 0 live, connection 1 not yet: its frames wait for ready.
	a := &adoptCarry{pending: map[uint64][][]byte{}, live: map[uint64]*conn{ids[0]: conns[0]}, done: map[*loop]int64{}}
	var fs []handoverwire.Frames
	for n := range k {
		for _, id := range ids {
			fs = append(fs, handoverwire.Frames{ID: id, Data: frame(n)})
		}
	}
	writes, _ := flushesAfter(t, l, func() {
		a.deliver(fs)
		a.ready(conns[1])
	})
	if writes != 2 {
		t.Errorf("%d carried frames for each of 2 connections, one of them made ready: %d writes, want 2", k, writes)
	}
	for i, p := range peers {
		for n := range k {
			if got, want := p.frame(t, size), frame(n); string(got) != string(want) {
				t.Fatalf("peer %d, frame %d: %q, want %q", i, n, got, want)
			}
		}
	}
}
