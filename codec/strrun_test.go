package codec

// This file holds the string kernel to its reference: stringRun (AVX2
// assembly on amd64) against stringRunGeneric, and stringRunGeneric
// against the plainest reading of its contract.

import (
	"bytes"
	"testing"
)

// stringRunNaive is stringRunGeneric's contract read byte by byte.
func stringRunNaive(b []byte) (n int, high bool) {
	end := len(b) &^ (stringRunBlock - 1)
	for n < end && b[n] != '"' && b[n] != '\\' && b[n] >= 0x20 {
		high = high || b[n] >= 0x80
		n++
	}
	return n, high
}

// checkStringRun fails when the kernels disagree on b.
func checkStringRun(t *testing.T, b []byte) {
	t.Helper()
	wn, wh := stringRunNaive(b)
	if n, h := stringRunGeneric(b); n != wn || h != wh {
		t.Fatalf("%q: stringRunGeneric (%d, %v), want (%d, %v)", b, n, h, wn, wh)
	}
	if stringRun == nil {
		return
	}
	if n, h := stringRun(b); n != wn || h != wh {
		t.Fatalf("%q: stringRun (%d, %v), want (%d, %v)", b, n, h, wn, wh)
	}
}

// stringRunCases calls check with the edge cases of the kernels: every
// length up to 100 bytes of plain, high or mixed bytes, and in each a
// stop byte (every control byte, the quote, the backslash) or a high
// byte at every offset up to 64 and at the last byte; every buffer ends
// exactly where its slice does.
func stringRunCases(check func(b []byte)) {
	fills := [][]byte{[]byte("x"), {0xff}, []byte("h\xc3\xa9llo \xe2\x98\x83 "), {0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f}}
	var marks []byte
	for c := range 0x20 {
		marks = append(marks, byte(c))
	}
	marks = append(marks, '"', '\\', 0x80, 0xff, 0x21, 0x5b, 0x5d)
	for n := range 101 {
		for _, fill := range fills {
			base := bytes.Repeat(fill, n/len(fill)+1)[:n]
			check(bytes.Clone(base))
			for _, m := range marks {
				for off := 0; off < n && off <= 64; off++ {
					b := bytes.Clone(base)
					b[off] = m
					check(b)
				}
				if n > 0 {
					b := bytes.Clone(base)
					b[n-1] = m
					check(b)
				}
			}
		}
	}
}

// TestStringRunMatchesGeneric holds the kernels to the contract on the
// edge cases: 32-byte block boundaries, a stop or a high byte at every
// offset, every control byte, a tail shorter than a block.
func TestStringRunMatchesGeneric(t *testing.T) {
	cases := 0
	stringRunCases(func(b []byte) {
		cases++
		checkStringRun(t, b[:len(b):len(b)])
	})
	if cases < 200000 {
		t.Fatalf("%d cases, want the whole table", cases)
	}
}

// FuzzStringRun holds the kernels to the contract on any input, at every
// start in its first 40 bytes.
func FuzzStringRun(f *testing.F) {
	f.Add([]byte(`0123456789abcdef0123456789abcdef"`))
	f.Add(bytes.Repeat([]byte("x\xc3\xa9"), 40))
	f.Add(append(bytes.Repeat([]byte("y"), 70), '\\', 'n', 0x1f))
	f.Fuzz(func(t *testing.T, b []byte) {
		for i := 0; i <= len(b) && i < 40; i++ {
			checkStringRun(t, b[i:])
		}
	})
}
