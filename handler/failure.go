package handler

import (
	"errors"

	"github.com/simplerpc/simplerpc/codec"
)

// Failure reasons. The first four are the original Python simplerpc's
// exception class names, sent verbatim in the "reason" field.
const (
	ReasonArgumentTypeError  = "ArgumentTypeError"
	ReasonArgumentValueError = "ArgumentValueError"
	ReasonArgumentMissing    = "ArgumentMissing"
	ReasonMalformedPayload   = "MalformedPayload"
	// ReasonInternal answers an error that names no reason, and a panic.
	ReasonInternal = "InternalError"
	// ReasonUnknownOpcode answers a call to an opcode with no call handler.
	ReasonUnknownOpcode = "UnknownOpcode"
)

// Reasoner is implemented by errors that name their own failure reason. A
// callback that returns one makes the engine send a failure frame with that
// reason and the error's text as the message.
type Reasoner interface {
	error
	Reason() string
}

// ArgumentTypeError reports an argument of the wrong type. Returned from a
// callback, it is sent to the peer as reason "ArgumentTypeError" with the
// string as the message.
type ArgumentTypeError string

// ArgumentValueError reports an argument with a bad value.
type ArgumentValueError string

// ArgumentMissing reports a missing argument, as in the original:
//
//	return handler.ArgumentMissing("Expected argument 'argname' in opcode 0")
type ArgumentMissing string

// MalformedPayload reports a payload that cannot be understood.
type MalformedPayload string

func (e ArgumentTypeError) Error() string  { return string(e) }
func (e ArgumentValueError) Error() string { return string(e) }
func (e ArgumentMissing) Error() string    { return string(e) }
func (e MalformedPayload) Error() string   { return string(e) }

// Reason returns "ArgumentTypeError".
func (e ArgumentTypeError) Reason() string { return ReasonArgumentTypeError }

// Reason returns "ArgumentValueError".
func (e ArgumentValueError) Reason() string { return ReasonArgumentValueError }

// Reason returns "ArgumentMissing".
func (e ArgumentMissing) Reason() string { return ReasonArgumentMissing }

// Reason returns "MalformedPayload".
func (e MalformedPayload) Reason() string { return ReasonMalformedPayload }

// Error is a failure as it travels on the wire: a -1 frame's reason and
// message. Failures received from a peer with a reason other than the four
// typed ones arrive as *Error; an application may also return one to send
// a reason of its own. It is immutable once created.
type Error struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`

	cause error // the local error behind an internal failure; never sent
}

// Error returns "reason: message".
func (e *Error) Error() string { return e.Reason + ": " + e.Message }

// Unwrap returns the local cause of an internal failure, or nil.
func (e *Error) Unwrap() error { return e.cause }

// FromWire returns the error for a failure frame received from a peer: one
// of the typed failures for their reasons, else an *Error.
func FromWire(reason, message string) error {
	switch reason {
	case ReasonArgumentTypeError:
		return ArgumentTypeError(message)
	case ReasonArgumentValueError:
		return ArgumentValueError(message)
	case ReasonArgumentMissing:
		return ArgumentMissing(message)
	case ReasonMalformedPayload:
		return MalformedPayload(message)
	}
	return &Error{Reason: reason, Message: message}
}

// ReasonOf returns the failure reason carried by err or by any error it
// wraps, or "" if err names none. It recognises [*Error], the typed
// failures and any [Reasoner], such as a *codec.MalformedError.
func ReasonOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	var r Reasoner
	if errors.As(err, &r) {
		return r.Reason()
	}
	return ""
}

// failureOf turns an error returned by a callback into what goes on the
// wire. Errors that name no reason become [ReasonInternal] with the error's
// text: the text the application chose, and nothing else.
func failureOf(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var me *codec.MalformedError
	if errors.As(err, &me) {
		return &Error{Reason: ReasonMalformedPayload, Message: me.Message, cause: err}
	}
	var r Reasoner
	if errors.As(err, &r) {
		return &Error{Reason: r.Reason(), Message: r.Error(), cause: err}
	}
	return &Error{Reason: ReasonInternal, Message: err.Error(), cause: err}
}

// Failure returns the wire form of err, as a callback's caller would send
// it: its reason and message. It never returns nil for a non-nil err.
func Failure(err error) *Error {
	if err == nil {
		return nil
	}
	return failureOf(err)
}
