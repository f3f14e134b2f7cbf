//go:build unix

// This file tests the batch a handover writes for the sends it carried:
// a send to all's frame held once, each connection given its indices.

package engine

import (
	"slices"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
)

// TestCarriedBatchHoldsRunOnce checks what a handover writes for the sends
// it carried: each send to all's frame once in the batch, however many
// moved connections get it, each connection the indices of its frames in
// order; and what the frames owed the bound is paid back once written.
func TestCarriedBatchHoldsRunOnce(t *testing.T) {
	const size, moved, k = 64, 3, 4
	a, b := UnixPair(t)
	l := &loop{}
	h := &handSession{s: &Server{}, uc: a, wake: make(chan struct{}, 1)}
	for i := range moved {
		h.addMoved(&conn{id: uint64(10 + i), outSize: size, loop: l}, &handedConn{})
	}
	var frames [][]byte
	for n := range k {
		obj := []byte(`{"n":` + string(rune('0'+n)) + `}`)
		l.carryShared(h, 3, &shared{obj: obj})
		f, _ := codec.AppendValidated(nil, size, 3, obj)
		frames = append(frames, f)
	}
	byID, _ := codec.AppendValidated(nil, size, 4, []byte(`{"to":10}`))
	h.add(10, byID)
	if h.owed == 0 {
		t.Fatal("the frames carried owe nothing")
	}
	if err := h.sendQueued(); err != nil {
		t.Fatal(err)
	}
	r := newHandReader(b)
	defer r.Close()
	batch, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Frames) != k+1 {
		t.Fatalf("%d sends to all to %d connections and one by id: %d runs in the batch, want %d", k, moved, len(batch.Frames), k+1)
	}
	if len(batch.To) != moved {
		t.Fatalf("%d entries, want one per moved connection (%d)", len(batch.To), moved)
	}
	for _, to := range batch.To {
		want := frames
		if to.ID == 10 {
			want = append(slices.Clone(frames), byID)
		}
		var got, wantJoined []byte
		for _, i := range to.Frames {
			got = append(got, batch.Frames[i]...)
		}
		for _, f := range want {
			wantJoined = append(wantJoined, f...)
		}
		if string(got) != string(wantJoined) {
			t.Errorf("net id %d gets %q, want %q", to.ID, got, wantJoined)
		}
	}
	if h.owed != 0 {
		t.Errorf("%d bytes still owed once written", h.owed)
	}
}
