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
	// The runs of a batch as a send to all carries them: held once, each
	// connection given its index.
	var runs [][]byte
	var to []handoverwire.To
	for _, id := range ids {
		to = append(to, handoverwire.To{ID: id})
	}
	for n := range k {
		runs = append(runs, frame(n))
		for i := range to {
			to[i].Frames = append(to[i].Frames, n)
		}
	}
	writes, _ := flushesAfter(t, l, func() {
		a.deliver(runs, to)
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

// TestCarriedSendToAllOneEntryPerConn checks that the sends to all a
// handover carries join each moved connection's entry while no connection
// was queued between them: one entry per connection, not one per
// connection and send, with the frames in order; and that each send's
// frame is held once, however many connections get it.
func TestCarriedSendToAllOneEntryPerConn(t *testing.T) {
	const size, moved, k = 64, 3, 5
	l := &loop{}
	h := &handSession{wake: make(chan struct{}, 1)}
	for i := range moved {
		h.addMoved(&conn{id: uint64(10 + i), outSize: size, loop: l}, &handedConn{})
	}
	send := func(n int) []byte {
		obj := []byte(`{"n":` + string(rune('0'+n)) + `}`)
		l.carryShared(h, 3, &shared{obj: obj})
		f, _ := codec.AppendValidated(nil, size, 3, obj)
		return f
	}
	var want []byte
	for n := range k {
		want = append(want, send(n)...)
	}
	if len(h.carried) != moved {
		t.Fatalf("%d sends to all to %d moved connections: %d entries, want %d", k, moved, len(h.carried), moved)
	}
	if len(h.runs) != k {
		t.Errorf("%d sends to all to %d moved connections of one size: %d runs held, want %d", k, moved, len(h.runs), k)
	}
	for _, ct := range h.carried {
		var got []byte
		for _, run := range ct.runs {
			got = append(got, h.runs[run]...)
		}
		if string(got) != string(want) {
			t.Errorf("net id %d: %q, want the %d frames in order", ct.id, got, k)
		}
	}
	// A connection queued between two sends: the frames after it are
	// entries of their own, behind it.
	h.queuedN++
	send(k)
	if len(h.carried) != 2*moved {
		t.Errorf("a send after a connection was queued: %d entries, want %d", len(h.carried), 2*moved)
	}
	for _, ct := range h.carried[moved:] {
		if ct.after != 1 || len(ct.runs) != 1 || ct.runs[0] != k {
			t.Errorf("net id %d: after %d, runs %v; want after 1, run %d", ct.id, ct.after, ct.runs, k)
		}
	}
}

// TestCarriedBoundGrowsWithMoved checks the bound on what a handover
// owes: maxCarried, and carriedPerConn more per connection moved.
func TestCarriedBoundGrowsWithMoved(t *testing.T) {
	h := &handSession{}
	if !h.owe(maxCarried) || h.owe(1) {
		t.Fatalf("nothing moved: the bound is not %d", maxCarried)
	}
	l := &loop{}
	for i := range 3 {
		h.addMoved(&conn{id: uint64(i + 1), outSize: 256, loop: l}, &handedConn{})
	}
	if !h.owe(3*carriedPerConn) || h.owe(1) {
		t.Errorf("3 moved: the bound is not %d + 3 x %d", maxCarried, carriedPerConn)
	}
}

// TestCarriedBatchesJoinOneWrite checks that batches of carried frames
// that reach a loop before it runs join: each connection is written once
// for all of them, the frames in order.
func TestCarriedBatchesJoinOneWrite(t *testing.T) {
	const size, k = 64, 6
	srv, peers, ids := fanServer(t, size, 2, 0)
	l := theLoop(t, srv)
	live := map[uint64]*conn{}
	for _, id := range ids {
		c, err := srv.lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		live[id] = c
	}
	a := &adoptCarry{pending: map[uint64][][]byte{}, live: live, done: map[*loop]int64{}}
	var want [][]byte
	writes, _ := flushesAfter(t, l, func() {
		for n := range k { // k batches, each one send to all
			f, err := codec.Append(nil, size, 3, map[string]int{"n": n})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, f)
			a.deliver([][]byte{f}, []handoverwire.To{{ID: ids[0], Frames: []int{0}}, {ID: ids[1], Frames: []int{0}}})
		}
	})
	if writes != len(ids) {
		t.Errorf("%d batches of carried frames for %d connections: %d writes, want %d", k, len(ids), writes, len(ids))
	}
	for i, p := range peers {
		for n := range k {
			if got := p.frame(t, size); string(got) != string(want[n]) {
				t.Fatalf("peer %d, frame %d: %q, want %q", i, n, got, want[n])
			}
		}
	}
}
