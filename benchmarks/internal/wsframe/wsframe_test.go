package wsframe

import (
	"bytes"
	"errors"
	"testing"
)

// TestRoundTrip: a masked frame parses back to its payload at every
// length class, and a frame cut short reports ErrShort.
func TestRoundTrip(t *testing.T) {
	key := [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	for _, n := range []int{0, 5, 125, 126, 256, 70000} {
		payload := bytes.Repeat([]byte("ab"), n)[:n]
		f := AppendText(nil, payload, key)
		if n > 0 && bytes.Contains(f, payload) {
			t.Fatalf("%d bytes: the payload is not masked", n)
		}
		for cut := range min(len(f), 12) {
			if _, _, _, err := Parse(bytes.Clone(f[:cut])); !errors.Is(err, ErrShort) {
				t.Fatalf("%d bytes cut at %d: %v, want ErrShort", n, cut, err)
			}
		}
		op, got, used, err := Parse(bytes.Clone(f))
		if err != nil || op != OpText || used != len(f) || !bytes.Equal(got, payload) {
			t.Fatalf("%d bytes: op %d, %d of %d bytes used, err %v", n, op, used, len(f), err)
		}
		op, got, err = Read(bytes.NewReader(f))
		if err != nil || op != OpText || !bytes.Equal(got, payload) {
			t.Fatalf("Read of %d bytes: op %d, err %v", n, op, err)
		}
	}
	if _, _, _, err := Parse([]byte{0x01, 0x00}); err == nil || errors.Is(err, ErrShort) {
		t.Fatalf("a fragment: %v", err)
	}
}
