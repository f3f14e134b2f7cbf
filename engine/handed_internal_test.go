// This file tests the record of the object an inline callback was handed
// (handed, dispatch.go) on its own: what SendRaw may skip, and when.

package engine

import "testing"

func TestHanded(t *testing.T) {
	var h handed
	frame := []byte(`{"n":1}   `)
	obj := frame[:7]
	if h.unchanged(obj) {
		t.Fatal("unchanged before hold")
	}
	if !h.hold(obj) {
		t.Fatal("hold refused")
	}
	if h.hold(frame[:2]) {
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
	if h.hold(nil) {
		t.Error("an empty object was held")
	}
	if !h.hold(frame[:2]) || !h.unchanged(frame[:2]) || h.unchanged(obj) {
		t.Error("a second hold does not replace the first")
	}
}
