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
	// ReasonInternal answers an error that names no reason and a panic,
	// with the message "internal error" (see [WithErrorText]).
	ReasonInternal = "InternalError"
	// ReasonUnknownOpcode answers a call to an opcode with no call handler.
	ReasonUnknownOpcode = "UnknownOpcode"
)

// Reasoner is implemented by errors that name their own failure reason. A
// callback that returns one makes the engine send a failure frame with that
// reason and the error's text as the message (a *codec.MalformedError
// sends its Message field); see [Failure].
type Reasoner interface {
	error
	Reason() string
}

// ArgumentTypeError reports an argument of the wrong type. Returned from a
// callback, it is sent to the peer as reason "ArgumentTypeError" with the
// string as the message.
type ArgumentTypeError string

// ArgumentValueError reports an argument with a bad value. Returned from a
// callback, it is sent as reason "ArgumentValueError".
type ArgumentValueError string

// ArgumentMissing reports a missing argument, as in the original:
//
//	return handler.ArgumentMissing("Expected argument 'argname' in opcode 0")
type ArgumentMissing string

// MalformedPayload reports a payload that cannot be understood. Returned
// from a callback, it is sent as reason "MalformedPayload".
type MalformedPayload string

// Error returns the message.
func (e ArgumentTypeError) Error() string { return string(e) }

// Error returns the message.
func (e ArgumentValueError) Error() string { return string(e) }

// Error returns the message.
func (e ArgumentMissing) Error() string { return string(e) }

// Error returns the message.
func (e MalformedPayload) Error() string { return string(e) }

// Reason returns "ArgumentTypeError".
func (e ArgumentTypeError) Reason() string { return ReasonArgumentTypeError }

// Reason returns "ArgumentValueError".
func (e ArgumentValueError) Reason() string { return ReasonArgumentValueError }

// Reason returns "ArgumentMissing".
func (e ArgumentMissing) Reason() string { return ReasonArgumentMissing }

// Reason returns "MalformedPayload".
func (e MalformedPayload) Reason() string { return ReasonMalformedPayload }

// Error is a failure as it travels on the wire: the reason and message of
// a -1 failure frame or a -5 reply failure. Failures received from a peer
// with a reason other than the four typed ones arrive as *Error (see
// [FromWire]); an application may also return one to send a reason of its
// own, and a failure callback may decode a -1 frame into one (see
// [Router.On]). Treat it as immutable once created. It is safe for
// concurrent use by multiple goroutines.
type Error struct {
	// Reason names the kind of failure: one of the Reason constants, or
	// one of the application's own.
	Reason string `json:"reason"`
	// Message explains the failure to a person.
	Message string `json:"message"`

	cause error // the local error the failure was made from; never sent
}

// Error returns "reason: message", or what of the two is not empty
// ("failure with no reason" when both are).
func (e *Error) Error() string {
	switch {
	case e.Message == "" && e.Reason == "":
		return "failure with no reason"
	case e.Message == "":
		return e.Reason
	case e.Reason == "":
		return "failure: " + e.Message
	}
	return e.Reason + ": " + e.Message
}

// Unwrap returns the local error the failure was made from by
// [Router.Dispatch], [Router.DispatchCall] or [Failure], for logs: it is
// never sent. It returns nil for a failure built directly or read from the
// wire.
func (e *Error) Unwrap() error { return e.cause }

// FromWire returns the error for a failure received from a peer, the
// reason and message of a -1 or -5 frame: one of the typed failures for
// their reasons, else an *Error.
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

// msgInternal is the message of a failure whose detail stays local: a
// panic, and by default an error that names no reason.
const msgInternal = "internal error"

// failureOf turns an error returned by a callback into what goes on the
// wire. An error that names no reason becomes [ReasonInternal] with
// msgInternal, or with its own text if errorText is set ([WithErrorText]).
func failureOf(err error, errorText bool) *Error {
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
	msg := msgInternal
	if errorText {
		msg = err.Error()
	}
	return &Error{Reason: ReasonInternal, Message: msg, cause: err}
}

// Failure returns the wire form of err, its reason and message, as a
// [Router] with the default settings sends it when a callback returns err:
//   - an [*Error] that err is or wraps is returned as it is;
//   - a [*codec.MalformedError] gives [ReasonMalformedPayload] and its
//     Message field;
//   - any other [Reasoner] (the typed failures such as [ArgumentMissing]
//     included) gives its reason and its own text;
//   - an error that names no reason gives [ReasonInternal] and the message
//     "internal error".
//
// Except in the first case the result wraps err: errors.Is and errors.As
// find it, for logs, and it is never sent. Failure is not tied to a router
// and so always gives the generic message for an error that names no
// reason, even where the router was made with [WithErrorText] and sends
// that error's text. It returns nil for a nil err, and never nil
// otherwise.
func Failure(err error) *Error {
	if err == nil {
		return nil
	}
	return failureOf(err, false)
}
