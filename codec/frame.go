package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Frame size limits. A frame must hold at least a message-size or a short
// failure frame; the upper bound keeps a peer from making us allocate without
// limit. Engines narrow these bounds further with their own options.
const (
	// DefaultMessageSize is the original Python simplerpc's frame size.
	DefaultMessageSize = 1024
	// MinMessageSize is the smallest frame size this package accepts.
	MinMessageSize = 64
	// MaxMessageSize is the largest frame size this package accepts (16 MiB).
	MaxMessageSize = 16 << 20
)

// Append appends one frame of exactly size bytes to dst: op, v marshalled as
// compact JSON with go-json, then spaces. v must marshal to a JSON object (a
// struct, a map, or a json.RawMessage holding an object); otherwise Append
// returns an error wrapping [ErrNotObject]. A frame that does not fit returns
// an error wrapping [ErrFrameTooLarge]. On error dst is returned unchanged.
func Append(dst []byte, size int, op Opcode, v any) ([]byte, error) {
	obj, err := Marshal(v)
	if err != nil {
		return dst, err
	}
	return appendFrame(dst, size, op, obj)
}

// Marshal encodes v as a compact JSON object with go-json, without HTML
// escaping ("<" stays "<": frames are not HTML). It returns an error
// wrapping [ErrNotObject] when v is not encoded as an object. The result can
// be given to [AppendRaw] any number of times, so that a broadcast encodes
// once.
func Marshal(v any) ([]byte, error) {
	obj, err := json.MarshalWithOption(v, json.DisableHTMLEscape())
	if err != nil {
		return nil, fmt.Errorf("codec: marshal %T: %w", v, err)
	}
	if len(obj) == 0 || obj[0] != '{' {
		return nil, fmt.Errorf("%w: %T encodes as %.16q", ErrNotObject, v, obj)
	}
	return obj, nil
}

// AppendRaw appends one frame of exactly size bytes to dst: op, the
// already-encoded JSON object obj, then spaces. obj is validated (exactly one
// JSON object, surrounding whitespace allowed and trimmed) and copied; the
// caller keeps ownership. Errors wrap [ErrNotObject] or [ErrFrameTooLarge];
// on error dst is returned unchanged.
func AppendRaw(dst []byte, size int, op Opcode, obj []byte) ([]byte, error) {
	start, end, err := objectBounds(obj)
	if err != nil {
		return dst, err
	}
	return appendFrame(dst, size, op, obj[start:end])
}

// Object validates that obj is exactly one JSON object, with optional
// surrounding whitespace, and returns it without that whitespace (a
// sub-slice of obj). Other input returns an error wrapping [ErrNotObject].
// It never allocates on success.
func Object(obj []byte) ([]byte, error) {
	start, end, err := objectBounds(obj)
	if err != nil {
		return nil, err
	}
	return obj[start:end], nil
}

// objectPrefix validates the JSON object that starts at b[0], exactly as
// strictly as [Decode] validates a frame's object, and returns its length;
// the bytes after it are not looked at. depth is how deeply the object is
// nested in the object it belongs to (0 for a frame's own object, 1 for a
// member of it), so that Decode's limit of 512 levels counts from the
// frame's object. It lets a reader that parses an envelope by hand (the
// engine's call frames) validate the embedded object once, without scanning
// the frame twice. Failures wrap [ErrNotObject]; success never allocates.
func objectPrefix(b []byte, depth int) (int, error) {
	if len(b) == 0 || b[0] != '{' {
		return 0, fmt.Errorf("%w: no object at the start", ErrNotObject)
	}
	n, ok := validObjectAt(b, depth)
	if !ok {
		return 0, fmt.Errorf("%w: invalid object", ErrNotObject)
	}
	return n, nil
}

// AppendValidated appends one frame like [AppendRaw] but does not validate
// obj: it must be what [Marshal] or [Object] returned (a compact or trimmed,
// valid JSON object), so that an object checked once is not scanned again
// when its frame is built, possibly many times. An invalid obj makes an
// invalid frame. Errors wrap [ErrFrameTooLarge]; on error dst is returned
// unchanged.
func AppendValidated(dst []byte, size int, op Opcode, obj []byte) ([]byte, error) {
	return appendFrame(dst, size, op, obj)
}

// objectBounds validates that b is one JSON object with optional surrounding
// whitespace and returns its bounds.
func objectBounds(b []byte) (start, end int, err error) {
	for start < len(b) && isSpace(b[start]) {
		start++
	}
	n, ok := validObject(b[start:])
	if !ok {
		return 0, 0, fmt.Errorf("%w: %.16q", ErrNotObject, b)
	}
	end = start + n
	if !isPadding(b[end:]) {
		return 0, 0, fmt.Errorf("%w: trailing data after object", ErrNotObject)
	}
	return start, end, nil
}

// appendFrame appends op, obj and the padding; obj is trusted to be a
// compact, valid object.
func appendFrame(dst []byte, size int, op Opcode, obj []byte) ([]byte, error) {
	var opbuf [11]byte
	head := opbuf[:1]
	if uint32(op) <= 9 { // most opcodes: one digit, without strconv
		opbuf[0] = '0' + byte(op)
	} else {
		head = strconv.AppendInt(opbuf[:0], int64(op), 10)
	}
	if n := len(head) + len(obj); n > size {
		return dst, fmt.Errorf("%w: opcode %d and payload need %d bytes, message size is %d",
			ErrFrameTooLarge, op, n, size)
	}
	if size < 0 {
		return dst, fmt.Errorf("%w: %d", ErrInvalidSize, size)
	}
	dst = grow(dst, size)
	frame := dst[len(dst) : len(dst)+size]
	n := copy(frame, head)
	n += copy(frame[n:], obj)
	pad(frame[n:])
	return dst[:len(dst)+size], nil
}

// grow makes room for n more bytes.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// spaces is a run of the padding byte that pad copies from and isPadding
// compares with, in one piece for most frames.
const (
	spaces16  = "                "
	spaces64  = spaces16 + spaces16 + spaces16 + spaces16
	spaces256 = spaces64 + spaces64 + spaces64 + spaces64
	spaces    = spaces256 + spaces256
)

// pad fills p with spaces: one copy of the run of spaces, then copies of
// what is filled already for a longer p.
func pad(p []byte) {
	n := copy(p, spaces)
	for n < len(p) {
		n += copy(p[n:], p[:n])
	}
}

// AppendFailure appends a failure frame (op -1, or [OpReplyFailure] when
// called through [AppendFailureOp]) carrying reason and message. The message
// is shortened, at a UTF-8 boundary, until the frame fits: a failure must
// always reach the peer. It returns an error only when even an empty message
// does not fit.
func AppendFailure(dst []byte, size int, reason, message string) ([]byte, error) {
	return AppendFailureOp(dst, size, OpFailure, nil, reason, message)
}

type failure struct {
	ID      *uint64 `json:"id,omitempty"`
	Reason  string  `json:"reason"`
	Message string  `json:"message"`
}

// AppendFailureOp appends a failure frame with the given opcode. If id is not
// nil the object carries it as "id" (the reply-failure of a call). The
// message is shortened as [AppendFailure] does.
func AppendFailureOp(dst []byte, size int, op Opcode, id *uint64, reason, message string) ([]byte, error) {
	f := failure{ID: id, Reason: reason, Message: message}
	for {
		obj, err := json.MarshalWithOption(&f, json.DisableHTMLEscape())
		if err != nil {
			return dst, fmt.Errorf("codec: marshal failure: %w", err)
		}
		out, err := appendFrame(dst, size, op, obj)
		if err == nil || f.Message == "" {
			return out, err
		}
		// Drop whole runes from the end until the JSON they took covers the
		// excess. Each rune is counted at the most its escape can take, so
		// the message is never cut shorter than it must be; when that
		// overestimates, the next round cuts again.
		excess := len(strconv.Itoa(int(op))) + len(obj) - size
		cut := len(f.Message)
		for excess > 0 && cut > 0 {
			r, n := utf8.DecodeLastRuneInString(f.Message[:cut])
			cut -= n
			excess -= maxEscapedLen(r, n)
		}
		f.Message = f.Message[:cut]
	}
}

// maxEscapedLen bounds the bytes go-json writes for the rune r that took n
// bytes of a string: \u escapes for control and HTML characters, U+2028,
// U+2029 and invalid bytes (as \ufffd), two bytes for '"' and '\\'.
func maxEscapedLen(r rune, n int) int {
	switch {
	case r < 0x20, r == '\u2028', r == '\u2029', r == utf8.RuneError && n == 1:
		return len(`\u0000`)
	case r == '"', r == '\\':
		return 2
	}
	return n
}

// AppendMessageSize appends a -2 frame of size bytes announcing n.
func AppendMessageSize(dst []byte, size, n int) ([]byte, error) {
	var obj [40]byte
	b := append(obj[:0], `{"message_size":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '}')
	return appendFrame(dst, size, OpMessageSize, b)
}

// Decode splits one frame into its opcode and its JSON object. obj is a
// sub-slice of frame (no copy): it is valid only as long as frame is. The
// whole frame is validated: optional whitespace, an optional sign, decimal
// digits, optional whitespace, exactly one JSON object, then only whitespace.
// Every failure is a [*MalformedError]. Decode never allocates on success.
func Decode(frame []byte) (op Opcode, obj []byte, err error) {
	op, brace, ok := plainOpcode(frame)
	if !ok {
		if brace = bytes.IndexByte(frame, '{'); brace < 0 {
			return 0, nil, errNoJSON()
		}
		if op, ok = parseOpcode(frame[:brace]); !ok {
			return 0, nil, errBadOpcode(frame[:brace])
		}
	}
	if n, ok := validObject(frame[brace:]); ok && isPadding(frame[brace+n:]) {
		return op, frame[brace : brace+n], nil
	}
	// Invalid: the resumable scanner says why, in the order it finds it
	// (syntax, then what follows the object, then UTF-8).
	var s jsonScanner
	n, done, ok := s.feed(frame[brace:])
	if !ok {
		return op, nil, errBadJSON(op, s.err)
	}
	if !done {
		return op, nil, errBadJSON(op, "unexpected end of data")
	}
	obj = frame[brace : brace+n]
	if !isPadding(frame[brace+n:]) {
		return op, nil, errBadJSON(op, "extra data after object")
	}
	if !s.validUTF8(obj) {
		return op, nil, errBadJSON(op, "invalid UTF-8")
	}
	return op, obj, nil
}

// isPadding reports whether p holds only whitespace. Spaces, the padding we
// write, are compared with the run of spaces in one piece.
func isPadding(p []byte) bool {
	for len(p) > len(spaces) && string(p[:len(spaces)]) == spaces {
		p = p[len(spaces):]
	}
	if len(p) <= len(spaces) && string(p) == spaces[:len(p)] {
		return true
	}
	for _, c := range p {
		if !isSpace(c) && c != '\v' && c != '\f' {
			return false
		}
	}
	return true
}

// plainOpcode reads the opcode as peers write it, up to four digits and
// an optional '-' right before the '{' at brace, without the search and
// the parse of the general case; ok is false for anything else, for
// parseOpcode to read. It gives parseOpcode's value for what it reads.
func plainOpcode(frame []byte) (op Opcode, brace int, ok bool) {
	if len(frame) > 1 && frame[1] == '{' && frame[0]-'0' <= 9 { // one digit, the most common
		return Opcode(frame[0] - '0'), 1, true
	}
	i := 0
	if len(frame) > 0 && frame[0] == '-' {
		i = 1
	}
	v, j := 0, i
	for ; j < len(frame) && j < i+4 && frame[j] >= '0' && frame[j] <= '9'; j++ {
		v = v*10 + int(frame[j]-'0')
	}
	if j == i || j >= len(frame) || frame[j] != '{' {
		return 0, 0, false
	}
	if i == 1 {
		v = -v
	}
	return Opcode(v), j, true
}

// isOpSpace reports whether c is ASCII whitespace that Python's int()
// strips around a number (space, \t, \n, \v, \f, \r).
func isOpSpace(c byte) bool {
	return c == ' ' || c >= '\t' && c <= '\r'
}

// parseOpcode parses the text before the object the way Python's int() does
// for ASCII: surrounding whitespace, an optional sign, decimal digits with
// single underscores between them. Values outside int32 are rejected.
func parseOpcode(t []byte) (Opcode, bool) {
	for len(t) > 0 && isOpSpace(t[0]) {
		t = t[1:]
	}
	for len(t) > 0 && isOpSpace(t[len(t)-1]) {
		t = t[:len(t)-1]
	}
	neg := false
	if len(t) > 0 && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	if len(t) == 0 {
		return 0, false
	}
	var v int64
	for i, c := range t {
		if c == '_' {
			if i == 0 || i == len(t)-1 || t[i-1] == '_' {
				return 0, false
			}
			continue
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
		if v > math.MaxInt32+1 {
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, false
	}
	return Opcode(v), true
}

// Unmarshal decodes the JSON object obj into v with go-json. A syntax error
// is returned as a [*MalformedError]; a value of the wrong JSON type for its
// field as a [*TypeError]. Other errors (a nil or non-pointer v) are returned
// as go-json reports them.
func Unmarshal(obj []byte, v any) error {
	err := json.Unmarshal(obj, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &MalformedError{Message: "JSON malformed", Err: err}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = te.Struct
		}
		return &TypeError{Field: field, Value: te.Value, Err: err}
	}
	return err
}
