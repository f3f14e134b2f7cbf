package handler

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/simplerpc/simplerpc/codec"
)

// Func is a raw callback for one opcode: the original's `msg.on(op, fn)`.
// data is the frame's JSON object, borrowed from the connection's inbound
// buffer: it is valid only until the callback returns. Copy it to keep it
// or hand it to another goroutine. A non-nil error is sent to the peer as a
// failure frame (see [Failure]), except from a callback for
// [codec.OpFailure], whose errors are logged (see [Router.On]).
type Func func(c Conn, data []byte) error

// ForwardFunc is a catch-all callback, like the original's ForwardHandler:
// it sees every application (non-negative) opcode, with the same borrowing
// rule as [Func].
type ForwardFunc func(c Conn, op codec.Opcode, data []byte) error

// CallFunc answers a call (a request that waits for a reply): its result is
// encoded as the reply's JSON object, and must encode as an object (a struct
// or a map); nil replies with {}. data is borrowed as in [Func].
type CallFunc func(c Conn, data []byte) (any, error)

// denseOps is the size of the array that serves small opcodes without a map
// lookup. Applications use small opcodes; larger ones go to a map.
const denseOps = 256

// entry holds what is registered for one opcode.
type entry struct {
	funcs []Func
	call  CallFunc
}

// table is an immutable snapshot of the registrations.
type table struct {
	dense   []*entry // indexed by opcode, len <= denseOps
	sparse  map[codec.Opcode]*entry
	failure *entry // codec.OpFailure's callbacks; never a call
	forward []ForwardFunc
	mw      []Middleware // see middleware.go; composed into frameMW and callMW
	frameMW FrameHandler // nil without Frame middleware
	callMW  CallHandler  // nil without Call middleware
}

func (t *table) lookup(op codec.Opcode) *entry {
	if uint(op) < uint(len(t.dense)) {
		return t.dense[op]
	}
	if op == codec.OpFailure {
		return t.failure
	}
	if t.sparse != nil {
		return t.sparse[op]
	}
	return nil
}

// clone copies the table's spine; the registering methods copy an entry
// before they change it.
func (t *table) clone() *table {
	n := &table{failure: t.failure, forward: t.forward, mw: t.mw}
	n.dense = append([]*entry(nil), t.dense...)
	if len(t.sparse) > 0 {
		n.sparse = make(map[codec.Opcode]*entry, len(t.sparse))
		for k, v := range t.sparse {
			n.sparse[k] = v
		}
	}
	return n
}

func (t *table) set(op codec.Opcode, e *entry) {
	if op == codec.OpFailure {
		t.failure = e
		return
	}
	if op < denseOps {
		for int(op) >= len(t.dense) {
			t.dense = append(t.dense, nil)
		}
		t.dense[op] = e
		return
	}
	if e == nil {
		delete(t.sparse, op)
		return
	}
	if t.sparse == nil {
		t.sparse = make(map[codec.Opcode]*entry)
	}
	t.sparse[op] = e
}

// Router maps opcodes to callbacks. Dispatch is lock-free: it reads an
// immutable table through an atomic pointer. Registration copies the table
// (copy-on-write), so it may run while frames are dispatched; it is meant
// for setup and occasional changes, not per-frame use.
//
// The zero value is an empty router that logs nothing. It is safe for
// concurrent use by multiple goroutines.
type Router struct {
	t         atomic.Pointer[table]
	mu        sync.Mutex // serialises writers of t
	logger    *slog.Logger
	errorText bool // send a plain error's text; set before use, then read-only
}

// RouterOption configures a [Router].
type RouterOption func(*Router)

// WithLogger sets the logger that receives callback errors that name no
// failure reason, every error of a failure callback (see [Router.On]) and
// recovered panics, one record each. Defaults to none: the router is
// silent unless given a logger.
func WithLogger(l *slog.Logger) RouterOption { return func(r *Router) { r.logger = l } }

// WithErrorText sets whether the peer gets the text of a callback's error
// that names no failure reason (a plain errors.New, a wrapped I/O error).
// Off, the failure carries [ReasonInternal] and the message "internal
// error", and the text goes only to the logger ([WithLogger]), so that no
// internal detail (addresses, queries, paths) reaches the peer. On, the
// failure's message is the error's text, as a development aid; the error is
// logged either way. Errors that name their reason ([Reasoner], [*Error])
// send their own message, and a panic sends "internal error", whatever the
// setting. Defaults to off.
func WithErrorText(on bool) RouterOption { return func(r *Router) { r.errorText = on } }

// NewRouter returns an empty router configured by opts.
func NewRouter(opts ...RouterOption) *Router {
	r := &Router{}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *Router) load() *table {
	if t := r.t.Load(); t != nil {
		return t
	}
	return &table{}
}

// update applies fn to a copy of the table and publishes it.
func (r *Router) update(fn func(*table)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.load().clone()
	fn(t)
	t.compose()
	r.t.Store(t)
}

// On adds fn for opcode op. Several callbacks for one opcode run in the
// order they were added; the first error stops the rest.
//
// The opcode may be [codec.OpFailure] (-1), what the original's client
// hands to its `on_fail` callback: fn then runs for each failure frame the peer sends,
// with its JSON object, {"reason":…,"message":…} (docs/PROTOCOL.md §2.1;
// [Handle] with [Error] decodes it). An error fn returns is logged
// ([WithLogger]) and never sent: answering a failure with a failure could
// loop between two peers. Catch-alls ([Router.Forward]) do not see failure
// frames.
//
// On panics if op is negative and not [codec.OpFailure] (reserved for the
// protocol), or if fn is nil: both are programming errors. It is safe to
// call while frames are being dispatched.
func (r *Router) On(op codec.Opcode, fn Func) {
	if op < 0 && op != codec.OpFailure {
		panic(fmt.Sprintf("handler: opcode %d is reserved for the protocol", op))
	}
	if fn == nil {
		panic("handler: nil callback")
	}
	r.update(func(t *table) {
		var e entry
		if old := t.lookup(op); old != nil {
			e = *old
		}
		e.funcs = append(e.funcs[:len(e.funcs):len(e.funcs)], fn)
		t.set(op, &e)
	})
}

// OnCall sets fn as the answer to calls on opcode op, replacing any earlier
// one (a call has one reply). One-way frames on op still go to the
// callbacks added with [Router.On]. It panics if op is negative, -1
// included (a failure frame is never a call), or if fn is nil.
func (r *Router) OnCall(op codec.Opcode, fn CallFunc) {
	if op < 0 {
		panic(fmt.Sprintf("handler: opcode %d is reserved for the protocol and takes no call handler", op))
	}
	if fn == nil {
		panic("handler: nil callback")
	}
	r.update(func(t *table) {
		var e entry
		if old := t.lookup(op); old != nil {
			e = *old
		}
		e.call = fn
		t.set(op, &e)
	})
}

// Forward adds a catch-all callback that sees every application frame after
// the opcode's own callbacks, like the original's ForwardHandler. Several
// run in the order added. Catch-alls never see the protocol's negative
// opcodes, failure frames (-1) included: a catch-all that relays or
// rejects application frames would otherwise relay or reject failures too.
// Failure callbacks are registered with [Router.On] and [codec.OpFailure].
// It panics on a nil fn.
func (r *Router) Forward(fn ForwardFunc) {
	if fn == nil {
		panic("handler: nil callback")
	}
	r.update(func(t *table) {
		t.forward = append(t.forward[:len(t.forward):len(t.forward)], fn)
	})
}

// Clear removes every callback and the call handler of opcode op;
// Clear(codec.OpFailure) removes the failure callbacks.
func (r *Router) Clear(op codec.Opcode) {
	r.update(func(t *table) {
		if t.lookup(op) != nil {
			t.set(op, nil)
		}
	})
}

// ClearAll removes every registration, catch-alls and failure callbacks
// included.
func (r *Router) ClearAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Store(&table{})
}

// Handles reports whether anything is registered for op: its callbacks, its
// call handler or a catch-all. For [codec.OpFailure] it reports whether a
// failure callback is registered (catch-alls do not count); it is false for
// any other negative opcode, which is never dispatched.
func (r *Router) Handles(op codec.Opcode) bool {
	if op < 0 {
		return op == codec.OpFailure && r.load().failure != nil
	}
	t := r.load()
	return t.lookup(op) != nil || len(t.forward) > 0
}

// Dispatch runs the callbacks registered for one application frame, in
// order, then the catch-alls, stopping at the first error. It returns the
// failure to send to the peer, or nil. An opcode with nothing registered is
// dropped, as in the original. data is borrowed by the callbacks for the
// duration of the call.
//
// For [codec.OpFailure], data is the failure frame's JSON object: Dispatch
// runs the failure callbacks added with [Router.On], no catch-alls, and
// always returns nil; an error or panic in a failure callback is logged and
// stops the rest, and no failure is sent back. Other negative opcodes
// belong to the protocol and are never dispatched.
//
// A callback's error becomes the failure as [Failure] says, except that a
// router made with [WithErrorText] sends the text of an error that names no
// reason. A panic in a callback is recovered, logged with its stack and
// answered with [ReasonInternal] and "internal error"; Dispatch itself never
// panics. It is safe for concurrent use and allocates nothing when
// callbacks succeed.
func (r *Router) Dispatch(c Conn, op codec.Opcode, data []byte) (fail *Error) {
	if op < 0 {
		if op == codec.OpFailure {
			r.dispatchFailure(c, data)
		}
		return nil
	}
	t := r.t.Load()
	if t == nil {
		return nil
	}
	e := t.lookup(op)
	if e == nil && len(t.forward) == 0 {
		return nil
	}
	if t.frameMW != nil {
		return r.dispatchFrameMW(t, c, op, data)
	}
	defer func() {
		if p := recover(); p != nil {
			fail = r.recovered(c, op, p)
		}
	}()
	if e != nil {
		for _, fn := range e.funcs {
			if err := fn(c, data); err != nil {
				return r.failed(c, op, err)
			}
		}
	}
	for _, fn := range t.forward {
		if err := fn(c, op, data); err != nil {
			return r.failed(c, op, err)
		}
	}
	return nil
}

// dispatchFailure runs the callbacks of a failure frame. Nothing goes back
// to the peer: its errors and panics are only logged.
func (r *Router) dispatchFailure(c Conn, data []byte) {
	t := r.t.Load()
	if t == nil || t.failure == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			r.recovered(c, codec.OpFailure, p)
		}
	}()
	for _, fn := range t.failure.funcs {
		if err := fn(c, data); err != nil {
			r.logFailed(c, codec.OpFailure, err)
			return
		}
	}
}

// DispatchCall runs the call handler of op and returns its result, or the
// failure to send back. A result that is a [*Pending] is answered later:
// the caller waits for it with [Pending.Then]. An opcode with no call handler (any negative one,
// -1 included) fails with [ReasonUnknownOpcode]. Errors become failures and
// panics are recovered as in [Router.Dispatch].
func (r *Router) DispatchCall(c Conn, op codec.Opcode, data []byte) (result any, fail *Error) {
	t := r.t.Load()
	if t != nil && t.callMW != nil {
		return r.dispatchCallMW(t, c, op, data)
	}
	var e *entry
	if op >= 0 && t != nil {
		e = t.lookup(op)
	}
	if e == nil || e.call == nil {
		return nil, unknownCall(op)
	}
	defer func() {
		if p := recover(); p != nil {
			result, fail = nil, r.recovered(c, op, p)
		}
	}()
	res, err := e.call(c, data)
	if err != nil {
		return nil, r.failed(c, op, err)
	}
	if p, ok := res.(*Pending); ok {
		p.bind(r, c, op)
	}
	return res, nil
}

func (r *Router) failed(c Conn, op codec.Opcode, err error) *Error {
	f := failureOf(err, r.errorText)
	if f.Reason == ReasonInternal {
		r.logFailed(c, op, err)
	}
	return f
}

func (r *Router) logFailed(c Conn, op codec.Opcode, err error) {
	if r.logger != nil {
		r.logger.Error("simplerpc: callback failed", "op", int32(op), "conn", connID(c), "err", err)
	}
}

func (r *Router) recovered(c Conn, op codec.Opcode, p any) *Error {
	if r.logger != nil {
		r.logger.Error("simplerpc: callback panicked", "op", int32(op), "conn", connID(c),
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	}
	return &Error{Reason: ReasonInternal, Message: msgInternal, cause: fmt.Errorf("handler: panic: %v", p)}
}

func connID(c Conn) uint64 {
	if c == nil {
		return 0
	}
	return c.ID()
}
