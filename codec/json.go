package codec

import (
	"encoding/binary"
	"unicode/utf8"
)

// maxDepth bounds the nesting of arrays and objects. Python's json module
// gives up near its recursion limit (about 1000); 512 keeps us well inside it
// and keeps the depth stack a fixed 64 bytes.
const maxDepth = 512

// States of the JSON scanner.
const (
	stTop        uint8 = iota // before the top-level '{'
	stKeyOrEnd                // after '{'
	stKey                     // after ',' in an object
	stColon                   // after a key
	stValue                   // after ':' or ',' in an array
	stValueOrEnd              // after '['
	stCommaOrEnd              // after a value
	stString                  // inside a string
	stStringEsc               // after '\'
	stStringU                 // inside \uXXXX; uhex counts the digits left
	stNumMinus                // after '-'
	stNumZero                 // after a leading '0'
	stNumInt                  // in the integer digits
	stNumDot                  // after '.'
	stNumFrac                 // in the fraction digits
	stNumE                    // after 'e' or 'E'
	stNumESign                // after the exponent's sign
	stNumExp                  // in the exponent digits
	stLiteral                 // inside true, false or null
	stDone                    // the top-level object is complete
)

// jsonScanner is a resumable, strict (RFC 8259) validator of one JSON object.
// feed may be called with successive chunks of a stream; it never allocates.
// The zero value is ready to scan.
type jsonScanner struct {
	state  uint8
	isKey  bool  // the current string is an object key
	uhex   uint8 // hex digits left in a \u escape
	litPos uint8 // next byte of lit to match
	lit    string
	depth  int
	stack  [maxDepth / 64]uint64 // bit set: the level is an array
	high   bool                  // a byte >= 0x80 was seen inside a string
	err    string
}

func (s *jsonScanner) push(array bool) bool {
	if s.depth >= maxDepth {
		s.err = "nested too deeply"
		return false
	}
	w, b := s.depth/64, uint(s.depth%64)
	if array {
		s.stack[w] |= 1 << b
	} else {
		s.stack[w] &^= 1 << b
	}
	s.depth++
	return true
}

func (s *jsonScanner) inArray() bool {
	d := s.depth - 1
	return s.stack[d/64]&(1<<uint(d%64)) != 0
}

// special8 reports whether any of the eight bytes in x (read little-endian)
// is a quote, a backslash, a control byte or non-ASCII: the bytes a string
// scan must look at one by one. The zero-byte tests are exact as to whether
// such a byte exists, which is all the caller needs.
func special8(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	bs := x ^ (lo * '\\')
	return ((q-lo)&^q|(bs-lo)&^bs|(x-lo*0x20)&^x|x)&hi != 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// feed scans b. It returns the number of bytes consumed and whether the
// object is complete (the last consumed byte is its closing '}'). On a syntax
// error it returns ok == false and s.err says why.
func (s *jsonScanner) feed(b []byte) (n int, done, ok bool) {
	i := 0
	for i < len(b) {
		c := b[i]
		switch s.state {
		case stString:
			// Fast path: run to the next quote, backslash or control byte,
			// eight plain ASCII bytes at a time.
		scan:
			for {
				for i+8 <= len(b) && !special8(binary.LittleEndian.Uint64(b[i:])) {
					i += 8
				}
				// A byte to look at is among the next eight (or the input
				// ends): walk them one by one before the wide test again,
				// so short strings are not tested once per byte.
				end := min(i+8, len(b))
				for ; i < end; i++ {
					c = b[i]
					if c == '"' || c == '\\' || c < 0x20 {
						break scan
					}
					if c >= 0x80 {
						s.high = true
					}
				}
				if i == len(b) {
					return i, false, true
				}
			}
			switch {
			case c == '"':
				if s.isKey {
					s.state = stColon
				} else {
					s.state = stCommaOrEnd
				}
			case c == '\\':
				s.state = stStringEsc
			default:
				s.err = "control character in string"
				return i, false, false
			}
		case stStringEsc:
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.state = stString
			case 'u':
				s.state, s.uhex = stStringU, 4
			default:
				s.err = "invalid escape in string"
				return i, false, false
			}
		case stStringU:
			if !isHex(c) {
				s.err = "invalid \\u escape"
				return i, false, false
			}
			if s.uhex--; s.uhex == 0 {
				s.state = stString
			}
		case stTop:
			if isSpace(c) {
				break
			}
			if c != '{' {
				s.err = "not an object"
				return i, false, false
			}
			s.push(false)
			s.state = stKeyOrEnd
		case stKeyOrEnd, stKey:
			if isSpace(c) {
				break
			}
			if c == '"' {
				s.state, s.isKey = stString, true
				break
			}
			if c == '}' && s.state == stKeyOrEnd {
				if s.pop() {
					return i + 1, true, true
				}
				break
			}
			s.err = "expected object key"
			return i, false, false
		case stColon:
			if isSpace(c) {
				break
			}
			if c != ':' {
				s.err = "expected ':'"
				return i, false, false
			}
			s.state = stValue
		case stValue, stValueOrEnd:
			if isSpace(c) {
				break
			}
			if c == ']' && s.state == stValueOrEnd {
				if s.pop() {
					return i + 1, true, true
				}
				break
			}
			if !s.beginValue(c) {
				return i, false, false
			}
		case stCommaOrEnd:
			if isSpace(c) {
				break
			}
			switch {
			case c == ',':
				if s.inArray() {
					s.state = stValue
				} else {
					s.state = stKey
				}
			case c == '}' && !s.inArray(), c == ']' && s.inArray():
				if s.pop() {
					return i + 1, true, true
				}
			default:
				s.err = "expected ',' or end of container"
				return i, false, false
			}
		case stNumMinus:
			switch {
			case c == '0':
				s.state = stNumZero
			case c >= '1' && c <= '9':
				s.state = stNumInt
			default:
				s.err = "invalid number"
				return i, false, false
			}
		case stNumZero, stNumInt:
			switch {
			case c >= '0' && c <= '9' && s.state == stNumInt:
			case c == '.':
				s.state = stNumDot
			case c == 'e' || c == 'E':
				s.state = stNumE
			case c >= '0' && c <= '9':
				s.err = "leading zero in number"
				return i, false, false
			default:
				s.state = stCommaOrEnd
				continue // c ends the number; scan it again
			}
		case stNumDot:
			if c < '0' || c > '9' {
				s.err = "invalid number"
				return i, false, false
			}
			s.state = stNumFrac
		case stNumFrac:
			switch {
			case c >= '0' && c <= '9':
			case c == 'e' || c == 'E':
				s.state = stNumE
			default:
				s.state = stCommaOrEnd
				continue
			}
		case stNumE:
			switch {
			case c == '+' || c == '-':
				s.state = stNumESign
			case c >= '0' && c <= '9':
				s.state = stNumExp
			default:
				s.err = "invalid number"
				return i, false, false
			}
		case stNumESign:
			if c < '0' || c > '9' {
				s.err = "invalid number"
				return i, false, false
			}
			s.state = stNumExp
		case stNumExp:
			if c < '0' || c > '9' {
				s.state = stCommaOrEnd
				continue
			}
		case stLiteral:
			if c != s.lit[s.litPos] {
				s.err = "invalid literal"
				return i, false, false
			}
			if s.litPos++; int(s.litPos) == len(s.lit) {
				s.state = stCommaOrEnd
			}
		case stDone:
			return i, true, true
		}
		i++
	}
	return i, false, true
}

// beginValue starts the value whose first byte is c.
func (s *jsonScanner) beginValue(c byte) bool {
	switch {
	case c == '"':
		s.state, s.isKey = stString, false
	case c == '{':
		if !s.push(false) {
			return false
		}
		s.state = stKeyOrEnd
	case c == '[':
		if !s.push(true) {
			return false
		}
		s.state = stValueOrEnd
	case c == '-':
		s.state = stNumMinus
	case c == '0':
		s.state = stNumZero
	case c >= '1' && c <= '9':
		s.state = stNumInt
	case c == 't':
		s.state, s.lit, s.litPos = stLiteral, "true", 1
	case c == 'f':
		s.state, s.lit, s.litPos = stLiteral, "false", 1
	case c == 'n':
		s.state, s.lit, s.litPos = stLiteral, "null", 1
	default:
		s.err = "invalid value"
		return false
	}
	return true
}

// pop closes a container and reports whether it was the top-level object.
func (s *jsonScanner) pop() bool {
	s.depth--
	if s.depth == 0 {
		s.state = stDone
		return true
	}
	s.state = stCommaOrEnd
	return false
}

// validUTF8 reports whether the scanned object's strings are valid UTF-8,
// checking only when a non-ASCII byte was seen.
func (s *jsonScanner) validUTF8(obj []byte) bool { return !s.high || utf8.Valid(obj) }
