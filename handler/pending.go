// This file holds Pending: a call's result that a handler gives later,
// from any goroutine, so that a call handler that needs another peer's
// answer does not hold its event loop.

package handler

import (
	"sync"

	"github.com/simplerpc/simplerpc/codec"
)

// Pending is the result of a call that a handler answers later. A call
// handler returns one, from [NewPending], as its result (with a nil
// error), and the connection's engine sends the reply once [Pending.Resolve]
// or [Pending.Reject] is called, from any goroutine, at any time: a handler
// that asks another peer (with CallAsync) returns at once and resolves the
// Pending in the answer's callback, without a worker pool and without
// holding the event loop.
//
//	handler.HandleCall(r, 7, func(c handler.Conn, req Req) (*handler.Pending, error) {
//		p := handler.NewPending()
//		go func() { p.Resolve(lookUp(req)) }()
//		return p, nil
//	})
//
// Only the first Resolve or Reject takes effect. A Pending never resolved
// leaves its caller waiting until the caller's own deadline; one resolved
// after its connection closed is dropped.
//
// It is safe for concurrent use by multiple goroutines.
type Pending struct {
	mu       sync.Mutex // guards the fields below
	resolved bool
	result   any
	err      error
	then     func(result any, fail *Error) // set once by the engine
	router   *Router                       // turns err into a failure
	conn     Conn
	op       codec.Opcode
}

// NewPending returns a Pending for a call handler to return.
func NewPending() *Pending { return &Pending{} }

// Resolve answers the call with result, which must encode as a JSON
// object (nil sends {}). It reports whether it took effect: false when the
// call was already answered.
func (p *Pending) Resolve(result any) bool { return p.settle(result, nil) }

// Reject answers the call with a failure, by the same rule as an error a
// handler returns ([Failure]; the router's [WithErrorText] applies). A
// nil err is an internal failure. It reports whether it took effect.
func (p *Pending) Reject(err error) bool {
	if err == nil {
		err = &Error{Reason: ReasonInternal, Message: msgInternal}
	}
	return p.settle(nil, err)
}

func (p *Pending) settle(result any, err error) bool {
	p.mu.Lock()
	if p.resolved {
		p.mu.Unlock()
		return false
	}
	p.resolved, p.result, p.err = true, result, err
	then := p.then
	p.mu.Unlock()
	if then != nil {
		p.deliver(then)
	}
	return true
}

// Then makes fn receive the outcome, once: at once, on the caller's
// goroutine, if the Pending is resolved already, else on the goroutine
// that resolves it. fail is nil on success. The engine calls it for the
// Pending a call handler returned; an application has no need to.
func (p *Pending) Then(fn func(result any, fail *Error)) {
	p.mu.Lock()
	if p.then != nil {
		p.mu.Unlock()
		panic("handler: Pending.Then called twice")
	}
	p.then = fn
	resolved := p.resolved
	p.mu.Unlock()
	if resolved {
		p.deliver(fn)
	}
}

// deliver gives fn the outcome, turning an error into the failure the
// router sends for it.
func (p *Pending) deliver(fn func(any, *Error)) {
	p.mu.Lock()
	result, err, r, c, op := p.result, p.err, p.router, p.conn, p.op
	p.mu.Unlock()
	if err == nil {
		fn(result, nil)
		return
	}
	if r == nil {
		fn(nil, Failure(err))
		return
	}
	fn(nil, r.failed(c, op, err))
}

// bind notes the router, connection and opcode of the call the Pending
// answers, for the failures of Reject.
func (p *Pending) bind(r *Router, c Conn, op codec.Opcode) {
	p.mu.Lock()
	p.router, p.conn, p.op = r, c, op
	p.mu.Unlock()
}
