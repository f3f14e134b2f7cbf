package codec

import "fmt"

// Scanner finds the first frame of a stream whose frame size is not known
// yet (docs/PROTOCOL.md §3): it reads the opcode and the JSON object and
// reports where the object ends. It is resumable: call Scan with all the
// bytes received so far, each time more arrive; it continues where it
// stopped and never looks at a byte twice. It never reads past its limit, and
// it never allocates.
//
// The zero value is not usable: create one with [NewScanner]. It is not safe
// for concurrent use.
type Scanner struct {
	limit  int
	pos    int // bytes of the stream consumed so far
	opEnd  int // index of '{' once found, else -1
	opText [24]byte
	opLen  int
	op     Opcode
	js     jsonScanner
}

// maxOpcodeText bounds the text before the object: an int32 with a sign and
// some whitespace fits easily.
const maxOpcodeText = 24

// NewScanner returns a Scanner that gives up once limit bytes have been read
// without finding the end of the first object. limit is normally the largest
// frame size the reader accepts.
func NewScanner(limit int) *Scanner {
	return &Scanner{limit: limit, opEnd: -1}
}

// Reset prepares s for a new stream, keeping its limit.
func (s *Scanner) Reset() { *s = Scanner{limit: s.limit, opEnd: -1} }

// Scan examines buf, the bytes of the stream received so far (a prefix of
// the stream; it must start with the bytes given to earlier calls). It
// returns:
//   - done == false, err == nil: need more bytes;
//   - done == true: the frame's opcode, and end, the offset just past the
//     object's closing '}'. The object is buf[start:end];
//   - err != nil: a [*MalformedError] (wrapping [ErrScanLimit] when the
//     limit was reached first). The stream cannot be framed.
func (s *Scanner) Scan(buf []byte) (op Opcode, start, end int, done bool, err error) {
	if len(buf) > s.limit {
		buf = buf[:s.limit]
	}
	for s.opEnd < 0 && s.pos < len(buf) {
		c := buf[s.pos]
		if c == '{' {
			s.opEnd = s.pos
			o, ok := parseOpcode(s.opText[:s.opLen])
			if !ok {
				return 0, 0, 0, false, errBadOpcode(s.opText[:s.opLen])
			}
			s.op = o
			break
		}
		if s.opLen == maxOpcodeText {
			return 0, 0, 0, false, errBadOpcode(s.opText[:s.opLen])
		}
		s.opText[s.opLen] = c
		s.opLen++
		s.pos++
	}
	if s.opEnd >= 0 && s.pos < len(buf) {
		n, fin, ok := s.js.feed(buf[s.pos:])
		s.pos += n
		if !ok {
			return s.op, 0, 0, false, errBadJSON(s.op, s.js.err)
		}
		if fin {
			if !s.js.validUTF8(buf[s.opEnd:s.pos]) {
				return s.op, 0, 0, false, errBadJSON(s.op, "invalid UTF-8")
			}
			return s.op, s.opEnd, s.pos, true, nil
		}
	}
	if s.pos >= s.limit {
		return s.op, 0, 0, false, &MalformedError{Op: s.op,
			Message: fmt.Sprintf("frame head longer than %d bytes", s.limit), Err: ErrScanLimit}
	}
	return 0, 0, 0, false, nil
}
