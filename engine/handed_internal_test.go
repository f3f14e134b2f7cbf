// This file tests the record of the object an inline callback was handed
// (handed, direct.go) on its own: what SendRaw may skip, and when, and the
// claim that lets one sender at a time use it.

package engine

import (
	"sync"
	"sync/atomic"
	"testing"
)

// unchanged is what SendRaw asks of the record: obj is the object
// handed, as it was validated, and the record could be claimed.
func (h *handed) unchanged(obj []byte) bool {
	if !h.claim(obj) {
		return false
	}
	defer h.unclaim(obj)
	return h.same(obj)
}

func TestHanded(t *testing.T) {
	var h handed
	c := &conn{}
	frame := []byte(`{"n":1}   `)
	obj := frame[:7]
	if h.unchanged(obj) {
		t.Fatal("unchanged before hold")
	}
	if !h.hold(c, obj) {
		t.Fatal("hold refused")
	}
	if h.hold(c, frame[:2]) {
		t.Error("a nested hold was taken")
	}
	if !h.unchanged(obj) {
		t.Error("the handed object is not recognised")
	}
	for name, other := range map[string][]byte{
		"a copy":  append([]byte(nil), obj...),
		"shorter": obj[:6],
		"longer":  frame[:8],
		"later":   frame[1:7],
	} {
		if h.unchanged(other) {
			t.Errorf("%s is taken for the handed object", name)
		}
	}
	obj[5] = '2'
	if h.unchanged(obj) {
		t.Error("the object changed in place is taken for the handed one")
	}
	obj[5] = '1'
	if !h.unchanged(obj) {
		t.Error("the object changed back is not recognised")
	}
	h.release()
	if h.unchanged(obj) {
		t.Error("the object is recognised after its callback returned")
	}
	if h.hold(c, nil) {
		t.Error("an empty object was held")
	}
	if !h.hold(c, frame[:2]) || !h.unchanged(frame[:2]) || h.unchanged(obj) {
		t.Error("a second hold does not replace the first")
	}
	h.release()
}

// TestHandedClaim: one claim at a time, none once released, and release
// waits for the holder to give the claim back.
func TestHandedClaim(t *testing.T) {
	var h handed
	obj := []byte(`{"n":1}`)
	h.hold(&conn{}, obj)
	if !h.claim(obj) {
		t.Fatal("the armed record could not be claimed")
	}
	if h.claim(obj) || h.unchanged(obj) {
		t.Fatal("the record was claimed twice")
	}
	released := make(chan struct{})
	go func() {
		h.release()
		close(released)
	}()
	// The loop's release spins until the claim is given back: the claim
	// is still held, so the record is not cleared yet.
	if h.first.Load() != firstByte(obj)|claimed {
		t.Fatalf("first is %#x while claimed", h.first.Load())
	}
	h.unclaim(obj)
	<-released
	if h.first.Load() != 0 || h.claim(obj) {
		t.Fatal("the record was not cleared by release")
	}
}

// TestHandedClaimRace: senders race for the claim while the loop arms
// and releases the record, as a callback that hands its slice to
// goroutines does, the release made while they still try in every other
// round. Only one holds it at a time: the counter, written under the
// claim alone, matches the claims taken, and -race finds no race; none is
// taken once the record is released.
func TestHandedClaimRace(t *testing.T) {
	var h handed
	obj := []byte(`{"n":1}`)
	const rounds, senders, tries = 200, 4, 50
	var held uint64 // written only under the claim
	var claims atomic.Uint64
	for i := range rounds {
		h.hold(&conn{}, obj)
		var wg sync.WaitGroup
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range tries {
					if h.claim(obj) {
						held++
						claims.Add(1)
						h.unclaim(obj)
					}
				}
			}()
		}
		if i%2 == 0 {
			wg.Wait()
			h.release()
			continue
		}
		h.release() // while they try: it waits for the holder
		if h.claim(obj) {
			t.Fatal("claimed after release")
		}
		wg.Wait()
	}
	if held == 0 || held != claims.Load() {
		t.Fatalf("%d frames counted under the claim, %d claims taken", held, claims.Load())
	}
}
