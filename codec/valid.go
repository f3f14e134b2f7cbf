package codec

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// validObject is the fast path of validation when the whole input is in
// hand (Decode, Object, AppendRaw): it reports the length of the strict
// (RFC 8259) JSON object at the start of b (white space before it
// allowed), its strings valid UTF-8. It accepts exactly what
// jsonScanner.feed accepts and jsonScanner.validUTF8 then passes, but keeps
// its state in locals and walks strings, numbers and literals in tight
// loops instead of one state switch per byte, and checks as UTF-8 only
// the strings that hold a byte >= 0x80 (the rest of an object is ASCII).
// Any failure (bad syntax, bad UTF-8, input ending early) returns ok ==
// false without saying why: the caller runs jsonScanner on the same bytes
// for the error, so the messages come from one place. It never allocates.
func validObject(b []byte) (n int, ok bool) {
	return validObjectAt(b, 0)
}

// validObjectAt is validObject for an object nested base levels deep in a
// larger document: the depth limit counts from the document's top. Where
// there is a block classifier, validObjectBlocks reads the object first;
// what it does not accept, validObjectScalar judges.
func validObjectAt(b []byte, base int) (n int, ok bool) {
	if haveBlockKernel && hasBlocks {
		if n, ok := validObjectBlocks(b, base); ok {
			return n, true
		}
	}
	return validObjectScalar(b, base)
}

// validObjectScalar is validObjectAt a byte at a time, for every input:
// the reference validObjectBlocks is held to.
func validObjectScalar(b []byte, base int) (n int, ok bool) {
	var stack [maxDepth / 64]uint64 // bit set: the level is an array
	if base < 0 || base >= maxDepth {
		return 0, false
	}
	depth, i := base, skipSpace(b, 0)
	inArray := false
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}

object: // b[i] is '{'
	if depth >= maxDepth {
		return 0, false
	}
	stack[depth/64] &^= 1 << uint(depth%64)
	depth++
	inArray = false
	i++
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, false
	}
	if b[i] == '}' {
		goto closed
	}

key: // b[i] should open a key
	if b[i] != '"' {
		return 0, false
	}
	if j := shortString(b, i+1); j > 0 {
		i = j
	} else {
		start := i + 1
		next, h, st := scanStringSteps(b, start)
		if st == stringLong {
			next, h, st = scanLongString(b, next, h)
		}
		if i = next; st != stringEnded || h && !utf8.Valid(b[start:i-1]) {
			return 0, false
		}
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	i = skipSpace(b, i+1)
	if i >= len(b) {
		return 0, false
	}

value: // b[i] should start a value
	switch c := b[i]; {
	case c == '"':
		if j := shortString(b, i+1); j > 0 {
			i = j
			break
		}
		start := i + 1
		next, h, st := scanStringSteps(b, start)
		if st == stringLong {
			next, h, st = scanLongString(b, next, h)
		}
		if i = next; st != stringEnded || h && !utf8.Valid(b[start:i-1]) {
			return 0, false
		}
	case c == '{':
		goto object
	case c == '[':
		if depth >= maxDepth {
			return 0, false
		}
		stack[depth/64] |= 1 << uint(depth%64)
		depth++
		inArray = true
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return 0, false
		}
		if b[i] == ']' {
			goto closed
		}
		goto value
	case c == '-' || c >= '0' && c <= '9':
		var good bool
		if i, good = skipNumber(b, i); !good {
			return 0, false
		}
	case c == 't':
		if !hasWord(b, i, "true") {
			return 0, false
		}
		i += 4
	case c == 'f':
		if !hasWord(b, i, "false") {
			return 0, false
		}
		i += 5
	case c == 'n':
		if !hasWord(b, i, "null") {
			return 0, false
		}
		i += 4
	default:
		return 0, false
	}

next: // after a value
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == ',':
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return 0, false
		}
		if inArray {
			goto value
		}
		goto key
	case c == '}' && !inArray, c == ']' && inArray:
		goto closed
	}
	return 0, false

closed: // b[i] closes the innermost container
	i++
	depth--
	if depth == base {
		return i, true
	}
	d := depth - 1
	inArray = stack[d/64]&(1<<uint(d%64)) != 0
	goto next
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the closing quote of the string whose
// contents start at b[i], and false for a control byte, a bad escape, bad
// UTF-8 or an unterminated string. validObjectScalar does the same inline,
// shortString first, for keys and values: through skipString its echo
// object cost 7% more instructions (cachegrind, -tags purego).
func skipString(b []byte, i int) (next int, ok bool) {
	next, high, ok := scanString(b, i)
	if high && ok && !utf8.Valid(b[i:next-1]) {
		return next, false
	}
	return next, ok
}

// longString is the length after which scanString hands a string to the
// string kernel (stringRun), where there is one: a call to the kernel
// costs more than a few of scanString's own eight-byte steps, so a shorter
// string is faster without it.
const longString = 64

// The outcomes of scanStringSteps.
const (
	stringEnded = iota // at its closing quote
	stringBad          // invalid or unterminated
	stringLong         // longString bytes in, for the kernel to go on
)

// scanString is skipString without the UTF-8 check: it also reports
// whether a byte >= 0x80 may be in the string (the bytes it reads are
// OR-ed together, a few past the string too: at worst a needless check).
// Eight bytes at a time (scanStringSteps, a leaf call), it jumps straight
// to the first quote, backslash or control byte; past the first
// longString bytes of a string, where there is a string kernel (AVX2 on
// amd64), scanLongString takes over.
func scanString(b []byte, i int) (next int, high, ok bool) {
	next, high, st := scanStringSteps(b, i)
	if st == stringLong {
		next, high, st = scanLongString(b, next, high)
	}
	return next, high, st == stringEnded
}

// scanLongString goes on with a long string at b[i], high reporting a byte
// >= 0x80 before it: the kernel takes its plain bytes 32 at a time, and
// scanStringSteps what the kernel stops at (an escape, the closing quote,
// the last partial block of b), until the string ends; it reports as
// scanStringSteps does, never stringLong.
func scanLongString(b []byte, i int, high bool) (next int, _ bool, st int) {
	for {
		n, h := stringRun(b[i:])
		j, hs, s := scanStringSteps(b, i+n)
		high = high || h || hs
		if s != stringLong {
			return j, high, s
		}
		i = j
	}
}

// scanStringSteps is scanString's eight-byte steps, a leaf: where there
// is a string kernel and it has a block to read after the string's first
// longString bytes, it reports stringLong, with the index reached, when the
// string goes on past them.
func scanStringSteps(b []byte, i int) (next int, high bool, st int) {
	const hi = 0x8080808080808080
	var seen uint64 // the bytes read, OR-ed
	// The steps go up to lim: the end of b, or, where the kernel can go
	// on, longString bytes in.
	lim := len(b)
	if haveStringKernel && len(b)-i >= longString+stringRunBlock && stringRun != nil {
		lim = i + longString
	}
	for {
		if i+8 <= lim {
			x := binary.LittleEndian.Uint64(b[i:])
			seen |= x
			m := stringStops(x)
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else if lim < len(b) {
			return i, seen&hi != 0, stringLong
		} else {
			for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
				seen |= uint64(b[i])
				i++
			}
			if i >= len(b) {
				return i, false, stringBad
			}
		}
		switch b[i] {
		case '"':
			return i + 1, seen&hi != 0, stringEnded
		case '\\':
		default: // a control byte
			return i, false, stringBad
		}
		if i+1 >= len(b) {
			return i, false, stringBad
		}
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
				return i, false, stringBad
			}
			i += 6
		default:
			return i, false, stringBad
		}
	}
}

// shortString returns the index after the closing quote of the string
// whose contents start at b[i] when the string ends within nine bytes,
// with no escape or control byte before its quote and no byte >= 0x80
// among the first eight; else 0, for scanStringSteps to go over it. Most
// keys and many values are that short: a step without a call.
func shortString(b []byte, i int) int {
	s := b[i:]
	if len(s) < 9 {
		return 0
	}
	x := binary.LittleEndian.Uint64(s)
	// The lowest mark is exact; with none, j is the ninth byte.
	j := bits.TrailingZeros64(stringStops(x)|x&0x8080808080808080) >> 3
	if s[j] == '"' {
		return i + j + 1
	}
	return 0
}

// stringStops marks, in the high bit of each byte of x (read little-endian),
// the quotes, backslashes and control bytes. The lowest mark is exact (the
// zero-byte tests can only mark falsely above a true mark), which is all
// skipString needs.
func stringStops(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	bs := x ^ (lo * '\\')
	return ((q-lo)&^q | (bs-lo)&^bs | (x-lo*0x20)&^x) & hi
}

// skipNumber returns the index after the number that starts at b[i], and
// false if it is not a valid JSON number.
func skipNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// hasWord reports whether b[i:] starts with w.
func hasWord(b []byte, i int, w string) bool {
	return len(b)-i >= len(w) && string(b[i:i+len(w)]) == w
}
