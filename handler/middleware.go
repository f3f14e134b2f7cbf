// This file holds the router's middleware: interceptors around the
// handling of frames and calls, composed into one chain when the table
// changes, so that dispatch without middleware pays one nil check and with
// it pays only the middleware's own work.

package handler

import (
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
)

// FrameHandler handles one application frame: the callbacks of its opcode
// in order, then the catch-alls, stopping at the first error, as
// [Router.Dispatch] describes. It is what a [Middleware]'s Frame wraps.
// data is borrowed as in [Func]. The error is the callback's own, before
// the router turns it into a failure (see [Failure]).
type FrameHandler func(c Conn, op codec.Opcode, data []byte) error

// CallHandler answers one call: the call handler of its opcode, or a
// [ReasonUnknownOpcode] failure (an [*Error]) if there is none. It is what
// a [Middleware]'s Call wraps. data is borrowed as in [Func]; the result
// and the error are the handler's own, before the router turns the error
// into a failure and the engine encodes the result.
type CallHandler func(c Conn, op codec.Opcode, data []byte) (any, error)

// Middleware intercepts the frames and calls a [Router] dispatches, for
// tracing, audit logs, metrics or per-opcode authorisation, without the
// router knowing of them. Frame wraps the handling of one-way frames and
// Call that of calls; either may be nil, to leave that kind alone.
//
// Each returns a handler that does its own work and calls next (or does
// not: an authorisation middleware returns an error instead, which the
// peer receives as a failure, as from a callback). It sees the frame's
// opcode, connection and data, and the outcome: the error, or the call's
// result, and may change them. It runs where the callbacks run (on the
// event loop by default: it must not block) and must not keep data past
// its return.
//
// Middleware sees the application frames that something is registered for
// (frames of an opcode with no callback and no catch-all are dropped
// unseen, as before), and every call, those of an opcode with no call
// handler included. Failure frames from the peer (-1) and the protocol's
// other frames never reach it. A callback's panic unwinds through it to the
// router, which recovers it: a middleware that measures time or counts
// outcomes does so in a deferred function to see panics too.
//
// Frame and Call are called to build the chain each time the router's
// registrations change, not per frame; what they return is called per
// frame and must be safe for concurrent use. A Middleware value is not
// changed by the router and may be shared by several routers.
type Middleware struct {
	// Frame wraps the handling of one-way application frames, or is nil.
	Frame func(next FrameHandler) FrameHandler
	// Call wraps the handling of calls, or is nil.
	Call func(next CallHandler) CallHandler
}

// Use adds middleware to the router. Middleware added first runs first
// (outermost): Use(a, b) runs a, which calls b, which calls the callbacks.
// Middleware applies to every opcode, to those registered before Use and
// after it; [Router.ClearAll] removes it with the rest.
//
// Without middleware, dispatch costs what it did before; with it, dispatch
// allocates nothing the middleware itself does not. Use panics if a
// Middleware has neither Frame nor Call, or if one of them returns a nil
// handler: both are programming errors. It is safe to call while frames
// are being dispatched.
func (r *Router) Use(mw ...Middleware) {
	for _, m := range mw {
		if m.Frame == nil && m.Call == nil {
			panic("handler: middleware with neither Frame nor Call")
		}
	}
	r.update(func(t *table) {
		t.mw = append(t.mw[:len(t.mw):len(t.mw)], mw...)
	})
}

// compose builds the table's middleware chains, or clears them when it has
// no middleware. It runs on every new table, before it is published.
func (t *table) compose() {
	t.frameMW, t.callMW = nil, nil
	if len(t.mw) == 0 {
		return
	}
	frame, call := FrameHandler(t.handleFrame), CallHandler(t.handleCall)
	var frames, calls bool
	for i := len(t.mw) - 1; i >= 0; i-- {
		m := t.mw[i]
		if m.Frame != nil {
			if frame = m.Frame(frame); frame == nil {
				panic("handler: middleware Frame returned a nil FrameHandler")
			}
			frames = true
		}
		if m.Call != nil {
			if call = m.Call(call); call == nil {
				panic("handler: middleware Call returned a nil CallHandler")
			}
			calls = true
		}
	}
	if frames {
		t.frameMW = frame
	}
	if calls {
		t.callMW = call
	}
}

// handleFrame is the innermost FrameHandler: what Dispatch does without
// middleware, on this table.
func (t *table) handleFrame(c Conn, op codec.Opcode, data []byte) error {
	if e := t.lookup(op); e != nil {
		for _, fn := range e.funcs {
			if err := fn(c, data); err != nil {
				return err
			}
		}
	}
	for _, fn := range t.forward {
		if err := fn(c, op, data); err != nil {
			return err
		}
	}
	return nil
}

// handleCall is the innermost CallHandler: what DispatchCall does without
// middleware, on this table.
func (t *table) handleCall(c Conn, op codec.Opcode, data []byte) (any, error) {
	var e *entry
	if op >= 0 {
		e = t.lookup(op)
	}
	if e == nil || e.call == nil {
		return nil, unknownCall(op)
	}
	return e.call(c, data)
}

func unknownCall(op codec.Opcode) *Error {
	return &Error{Reason: ReasonUnknownOpcode, Message: fmt.Sprintf("No call handler for opcode %d", op)}
}

// dispatchFrameMW is Dispatch through the middleware chain.
func (r *Router) dispatchFrameMW(t *table, c Conn, op codec.Opcode, data []byte) (fail *Error) {
	defer func() {
		if p := recover(); p != nil {
			fail = r.recovered(c, op, p)
		}
	}()
	if err := t.frameMW(c, op, data); err != nil {
		return r.failed(c, op, err)
	}
	return nil
}

// dispatchCallMW is DispatchCall through the middleware chain.
func (r *Router) dispatchCallMW(t *table, c Conn, op codec.Opcode, data []byte) (result any, fail *Error) {
	defer func() {
		if p := recover(); p != nil {
			result, fail = nil, r.recovered(c, op, p)
		}
	}()
	res, err := t.callMW(c, op, data)
	if err != nil {
		return nil, r.failed(c, op, err)
	}
	if p, ok := res.(*Pending); ok {
		p.bind(r, c, op)
	}
	return res, nil
}
