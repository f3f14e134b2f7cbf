package codec

import (
	"errors"
	"fmt"
	"strconv"
)

// ReasonMalformedPayload is the failure reason of every malformed frame, as in
// the original Python simplerpc.
const ReasonMalformedPayload = "MalformedPayload"

var (
	// ErrFrameTooLarge is returned when an opcode and its JSON object do not
	// fit in the frame size. Nothing is appended. The error wraps both sizes:
	// test for it with errors.Is.
	ErrFrameTooLarge = errors.New("codec: frame too large")
	// ErrNotObject is returned when a value does not marshal to a JSON object.
	ErrNotObject = errors.New("codec: payload is not a JSON object")
	// ErrInvalidSize is returned for a frame size outside
	// [MinMessageSize, MaxMessageSize].
	ErrInvalidSize = errors.New("codec: invalid message size")
	// ErrMalformed is matched by every [*MalformedError] with errors.Is.
	ErrMalformed = errors.New("codec: malformed frame")
	// ErrMalformedCall is matched, with errors.Is, by the [*MalformedError]
	// that [DecodeFrame] returns for a well-formed call frame whose
	// envelope cannot be read (docs/PROTOCOL.md §5.3): a request without
	// an id, an op or a data object, for example.
	ErrMalformedCall = errors.New("codec: malformed call envelope")
	// ErrScanLimit is wrapped by the [*MalformedError] a [Scanner] returns
	// once it has read its limit without finding the end of a frame.
	ErrScanLimit = errors.New("codec: frame head exceeds scan limit")
)

// MalformedError describes a frame that cannot be decoded. Its Message is the
// text sent to the peer in a failure frame; Err, if set, is the underlying
// cause (a go-json error, [ErrScanLimit], or an error matching
// [ErrMalformedCall]).
//
// It matches [ErrMalformed] with errors.Is. It is not safe for concurrent
// mutation; it is immutable once returned.
type MalformedError struct {
	// Op is the frame's opcode when it could be read, else 0.
	Op Opcode
	// Message is the human-readable explanation sent to the peer.
	Message string
	// Err is the underlying cause, or nil.
	Err error
}

// Error returns "codec: malformed frame: " and the message.
func (e *MalformedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("codec: malformed frame: %s: %v", e.Message, e.Err)
	}
	return "codec: malformed frame: " + e.Message
}

// Reason returns "MalformedPayload", the failure reason sent to the peer.
func (e *MalformedError) Reason() string { return ReasonMalformedPayload }

// Unwrap returns the underlying cause.
func (e *MalformedError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrMalformed].
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

// Messages of the original Python simplerpc, reused verbatim.
const (
	msgNoJSON  = "JSON data not found"
	msgBadJSON = "JSON malformed for opcode: "
)

func errNoJSON() error { return &MalformedError{Message: msgNoJSON} }

func errBadJSON(op Opcode, cause string) error {
	return &MalformedError{Op: op, Message: msgBadJSON + strconv.FormatInt(int64(op), 10), Err: errors.New(cause)}
}

func errBadOpcode(text []byte) error {
	const max = 32
	if len(text) > max {
		return &MalformedError{Message: fmt.Sprintf("Opcode malformed: %q...", text[:max])}
	}
	return &MalformedError{Message: fmt.Sprintf("Opcode malformed: %q", text)}
}

// ReasonArgumentTypeError is the failure reason of a [*TypeError].
const ReasonArgumentTypeError = "ArgumentTypeError"

// TypeError reports a JSON value of the wrong type for the Go field it is
// decoded into. Its Reason is "ArgumentTypeError". It is immutable once
// returned.
type TypeError struct {
	// Field is the dotted path of the field, as go-json reports it.
	Field string
	// Value describes the JSON value found ("string", "number", ...).
	Value string
	// Err is go-json's error.
	Err error
}

// Error describes the mismatch.
func (e *TypeError) Error() string {
	return fmt.Sprintf("codec: argument %q: unexpected JSON %s", e.Field, e.Value)
}

// Reason returns "ArgumentTypeError".
func (e *TypeError) Reason() string { return ReasonArgumentTypeError }

// Unwrap returns go-json's error.
func (e *TypeError) Unwrap() error { return e.Err }
