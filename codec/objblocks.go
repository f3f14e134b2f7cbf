package codec

// This file holds the block validator: an object read 64 bytes at a time
// from masks of its quotes, white space and structural bytes (a block
// classifier, AVX2 assembly on amd64), its tokens then walked one by one
// without looking at the bytes between them. It is the fast path of
// validObjectAt; what it does not accept (an invalid object, a control
// byte or a byte >= 0x80 outside a string) it leaves to
// validObjectScalar, which has the last word on every input.

import (
	"math/bits"
	"unicode/utf8"
)

// blockMasks is what the classifier reports of 64 bytes: bit k of each
// mask is byte k of the block.
type blockMasks struct {
	quote, backslash uint64
	ctrl             uint64 // a control byte, < 0x20
	high             uint64 // a byte >= 0x80
	space            uint64 // ' ', '\t', '\n', '\r'
	structural       uint64 // '{', '}', '[', ']', ':', ','
}

// blockBatch is how many blocks one call of the classifier takes: the
// 191-byte echo object and most others in one call, without classifying
// far past the object when a large frame holds a small one.
const blockBatch = 4

// classifyGeneric is what every block classifier computes, in Go: the
// reference the tests hold the assembly to.
func classifyGeneric(p *[64]byte, m *blockMasks) {
	*m = blockMasks{}
	for k, c := range p {
		bit := uint64(1) << k
		switch {
		case c == '"':
			m.quote |= bit
		case c == '\\':
			m.backslash |= bit
		case c == '{' || c == '}' || c == '[' || c == ']' || c == ':' || c == ',':
			m.structural |= bit
		}
		if c < 0x20 {
			m.ctrl |= bit
		}
		if c >= 0x80 {
			m.high |= bit
		}
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			m.space |= bit
		}
	}
}

// The states of the block validator's walk: where it is, what the next
// token may be. walkNext gives the state after each class of token. A
// state is a multiple of 16, so that a state and a class (< 16) index
// walkNext, 256 entries, with no bounds check.
const (
	inStart       = iota << 4 // before the object: '{' only
	inObjectFirst             // after '{': a key or '}'
	inObjectKey               // after ',' in an object: a key
	inObjectColon             // after a key: ':'
	inObjectValue             // after ':': a value
	inObjectNext              // after a member: ',' or '}'
	inArrayFirst              // after '[': a value or ']'
	inArrayValue              // after ',' in an array: a value
	inArrayNext               // after an element: ',' or ']'
	inError                   // nothing valid: it stays there
)

// The classes of tokens, from 1 to 9 (below 16, and never 0, which would
// leave a state | class the state itself): the first four need no more
// than walkNext.
const (
	tokQuote = iota + 1 // an opening quote: a string, checked whole by the masks
	tokColon
	tokComma
	tokOther // any byte that starts no valid token: to inError
	tokScalar
	tokOpenObject
	tokOpenArray
	tokCloseObject
	tokCloseArray
)

// tokenClass is the class of each byte that starts a token; a number or a
// literal by its first byte. Never written after initialisation.
var tokenClass = func() (t [256]uint8) {
	for c := range t {
		t[c] = tokOther
	}
	t['"'], t[':'], t[','] = tokQuote, tokColon, tokComma
	t['{'], t['['], t['}'], t[']'] = tokOpenObject, tokOpenArray, tokCloseObject, tokCloseArray
	for _, c := range []byte("-0123456789tfn") {
		t[c] = tokScalar
	}
	return t
}()

// walkNext is the state after a token of each class in each state:
// inError for a token that may not come there. A close gives inObjectNext
// or inArrayNext as a placeholder: the walk sets the state of the
// container the close returns to. Never written after initialisation.
var walkNext = func() (t [256]uint8) {
	for i := range t {
		t[i] = inError
	}
	value := func(s, next uint8) {
		t[s|tokQuote], t[s|tokScalar] = next, next
		t[s|tokOpenObject], t[s|tokOpenArray] = inObjectFirst, inArrayFirst
	}
	t[inStart|tokOpenObject] = inObjectFirst
	t[inObjectFirst|tokQuote], t[inObjectFirst|tokCloseObject] = inObjectColon, inObjectNext
	t[inObjectKey|tokQuote] = inObjectColon
	t[inObjectColon|tokColon] = inObjectValue
	value(inObjectValue, inObjectNext)
	t[inObjectNext|tokComma], t[inObjectNext|tokCloseObject] = inObjectKey, inObjectNext
	value(inArrayFirst, inArrayNext)
	t[inArrayFirst|tokCloseArray] = inArrayNext
	value(inArrayValue, inArrayNext)
	t[inArrayNext|tokComma], t[inArrayNext|tokCloseArray] = inArrayValue, inArrayNext
	return t
}()

// validObjectBlocks is validObjectAt for an input the classifier can
// read: it reports the length of the object at the start of b (white space
// before it allowed), nested base levels deep, and ok; or ok == false when
// the object is invalid or holds what it leaves to validObjectScalar (a
// control byte other than white space, or a byte >= 0x80 outside a
// string, in the blocks it reads; a frame that ends before the object
// does). It never accepts what validObjectScalar refuses.
//
// The masks of a block give its strings (a prefix XOR of its quotes that
// no backslash escapes), so a string is checked whole: no control byte
// inside, each escape read where its backslash is (escapes), and, when a
// string held a byte >= 0x80, the object's bytes valid UTF-8 (outside
// strings they are ASCII, so that is each string's). The tokens are the
// structural bytes and the opening quotes outside strings, and the first
// byte of every run of other bytes outside strings (a number or a literal,
// read with skipNumber or hasWord, which must end where the run does). The walk keeps, as validObjectScalar does,
// which containers are open (a bit per level, set for an array) and what
// may come next (walkNext).
func validObjectBlocks(b []byte, base int) (n int, ok bool) {
	var stack [maxDepth / 64]uint64 // bit set: the level is an array
	if base < 0 || base >= maxDepth {
		return 0, false
	}
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, false
	}
	var (
		masks    [blockBatch]blockMasks
		tail     [64]byte
		inString uint64 // all ones when the previous block ended inside a string
		inRun    uint64 // 1 when it ended inside a number or a literal
		escaping uint64 // 1 when its last byte began an escape
		batch    = blockBatch
		// The first and the last byte >= 0x80 in a string, -1 for none:
		// the bytes between are the ones UTF-8 may be broken in.
		firstHigh, lastHigh = -1, -1
	)
	depth, state := uint(base), uint8(inStart)
	for off := i; off < len(b); {
		// The next blocks: up to blockBatch whole ones from b, or the
		// last, partial one from a copy padded with spaces.
		nb := min((len(b)-off)/64, batch)
		batch = blockBatch
		if nb > 0 {
			classify(&b[off], nb, &masks[0])
		} else {
			copy(tail[copy(tail[:], b[off:]):], spaces[:64])
			classify(&tail[0], 1, &masks[0])
			nb = 1
		}
		for k := range nb {
			m := &masks[k]
			quote := m.quote
			if m.backslash|escaping != 0 {
				var good bool
				if quote, escaping, good = escapes(b, off, m.backslash, escaping, quote); !good {
					return 0, false
				}
			}
			str := prefixXOR(quote) ^ inString // set from an opening quote to its closing one, that one not
			inString = uint64(int64(str) >> 63)
			if m.ctrl&(str|^m.space)|(m.high|m.backslash)&^str != 0 {
				// A control byte in a string, or one outside that is not
				// white space; a byte >= 0x80 or a backslash outside.
				return 0, false
			}
			if m.high != 0 {
				if firstHigh < 0 {
					firstHigh = off + bits.TrailingZeros64(m.high)
				}
				lastHigh = off + 63 - bits.LeadingZeros64(m.high)
			}
			run := ^(str | m.quote | m.space | m.structural)
			starts := run &^ (run<<1 | inRun)
			inRun = run >> 63
			tokens := m.structural&^str | quote&str | starts
			var end int
			if state, depth, end = walkTokens(b, off, tokens, state, depth, uint(base), &stack); end > 0 {
				if firstHigh >= 0 && !utf8.Valid(b[firstHigh:lastHigh+1]) {
					return 0, false
				}
				return end, true
			}
			if state == inError {
				return 0, false
			}
			off += 64
			if str == ^uint64(0) && escaping == 0 && haveStringKernel && stringRun != nil && len(b)-off >= longString {
				// A long string (this whole block in it) goes on past the
				// block: the string kernel finds its end 32 bytes a step,
				// and the blocks start again there, inside the string.
				n, h := stringRun(b[off:])
				if n >= longString {
					if h { // somewhere in the run: all of it is checked
						if firstHigh < 0 {
							firstHigh = off
						}
						lastHigh = off + n - 1
					}
					off += n
					batch = 1 // the string may end in the next block, the object soon after
					break
				}
			}
		}
	}
	return 0, false
}

// walkTokens walks the tokens of the block at b[off:] (a bit per byte)
// from state, depth containers open (stack) of which base are not the
// object's: it returns the state and the depth after them, and end, the
// index after the object, when the object closed in the block (else 0).
// inError as the state ends the walk.
func walkTokens(b []byte, off int, tokens uint64, state uint8, depth, base uint, stack *[maxDepth / 64]uint64) (uint8, uint, int) {
	for tokens != 0 {
		at := off + bits.TrailingZeros64(tokens)
		tokens &= tokens - 1
		class := tokenClass[b[at]]
		state = walkNext[state|class]
		if class <= tokOther {
			continue
		}
		if state == inError {
			return inError, depth, 0
		}
		switch class {
		case tokScalar:
			end, good := skipScalar(b, at)
			if !good || end < len(b) && !endsScalar(b[end]) {
				return inError, depth, 0
			}
		case tokOpenObject, tokOpenArray:
			if depth >= maxDepth {
				return inError, depth, 0
			}
			if class == tokOpenArray {
				stack[depth/64] |= 1 << (depth % 64)
			} else {
				stack[depth/64] &^= 1 << (depth % 64)
			}
			depth++
		default: // a close
			if depth--; depth == base {
				return state, depth, at + 1
			}
			state = inObjectNext
			if d := depth - 1; stack[d/64]&(1<<(d%64)) != 0 {
				state = inArrayNext
			}
		}
	}
	return state, depth, 0
}

// escapes reads the backslashes bs of the block at b[off:], escaping
// reporting whether the block before ended in the middle of an escape
// (its first byte is escaped): it checks each escape (PROTOCOL.md's
// strings are JSON's: one of "\/bfnrt, or u and four hex digits, read
// from b) and returns the quotes that are not escaped, and whether this
// block's last byte begins an escape. ok is false for a bad escape.
func escapes(b []byte, off int, bs, escaping, quote uint64) (q, next uint64, ok bool) {
	escaped := escaping
	bs &^= escaping
	for bs != 0 {
		k := bits.TrailingZeros64(bs)
		at := off + k
		if at+1 >= len(b) {
			return 0, 0, false
		}
		switch b[at+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if at+6 > len(b) || !isHex(b[at+2]) || !isHex(b[at+3]) || !isHex(b[at+4]) || !isHex(b[at+5]) {
				return 0, 0, false
			}
		default:
			return 0, 0, false
		}
		if k == 63 {
			next = 1
		}
		escaped |= 1 << (k + 1) // 0 for k == 63
		bs &^= 1<<k | 1<<(k+1)
	}
	return quote &^ escaped, next, true
}

// prefixXOR sets bit k of its result to the XOR of bits 0..k of x: for
// the quotes of a block, the bytes from each opening quote up to its
// closing one.
func prefixXOR(x uint64) uint64 {
	x ^= x << 1
	x ^= x << 2
	x ^= x << 4
	x ^= x << 8
	x ^= x << 16
	x ^= x << 32
	return x
}

// skipScalar reads the number or the literal at b[i], as
// validObjectScalar does.
func skipScalar(b []byte, i int) (int, bool) {
	switch c := b[i]; {
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't' && hasWord(b, i, "true"):
		return i + 4, true
	case c == 'f' && hasWord(b, i, "false"):
		return i + 5, true
	case c == 'n' && hasWord(b, i, "null"):
		return i + 4, true
	}
	return i, false
}

// endsScalar reports whether c may follow a number or a literal: white
// space, a structural byte or a quote (the walk judges which of them may
// come there).
func endsScalar(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', '{', '}', '[', ']', '"':
		return true
	}
	return false
}
