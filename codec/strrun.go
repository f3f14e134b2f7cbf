package codec

// This file holds the reference of the string kernel: the run of plain
// bytes in a long string, which scanLongString skips in one call.
// On amd64 with AVX2 the kernel is assembly (strrun_amd64.s); elsewhere,
// and with the purego build tag, there is none (scanString's eight-byte
// steps read every string), and this reference is what the tests hold the
// kernel to.

import (
	"encoding/binary"
	"math/bits"
)

// stringRunBlock is the step of the string kernel: it looks at whole blocks
// of this many bytes, and never at the bytes after the last whole block.
const stringRunBlock = 32

// stringRunGeneric is what every string kernel computes, in Go: n is the
// index in b of the first quote, backslash or control byte (< 0x20), or,
// when the whole blocks of stringRunBlock bytes at the start of b hold none,
// the length of those blocks (len(b) rounded down to a multiple of
// stringRunBlock); high reports whether a byte of b[:n] is >= 0x80. A tail
// of fewer than stringRunBlock bytes is not looked at.
func stringRunGeneric(b []byte) (n int, high bool) {
	const hi = 0x8080808080808080
	end := len(b) &^ (stringRunBlock - 1)
	var seen uint64
	for n < end {
		x := binary.LittleEndian.Uint64(b[n:])
		if m := stringStops(x); m != 0 {
			k := bits.TrailingZeros64(m) >> 3
			seen |= x & (1<<(8*k) - 1)
			return n + k, seen&hi != 0
		}
		seen |= x
		n += 8
	}
	return n, seen&hi != 0
}
