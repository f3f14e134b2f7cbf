// This file holds the connection as callbacks see it, and its context.

package handler

import (
	"context"

	"github.com/simplerpc/simplerpc/codec"
)

// Conn is a connection as a callback sees it: the original's Connection
// object. The engine implements it with one type, for the connections a
// server accepts and those a client dials (a client's reconnection is a
// new Conn).
//
// Every method is safe for concurrent use by multiple goroutines, and may be
// called from inside a callback, except [Conn.Call] as noted there.
type Conn interface {
	// ID returns the connection's id. For a connection a server accepted,
	// it is the net id (docs/PROTOCOL.md §4): unique for the life of the
	// server and never reused. For a connection a client dialed, it is a
	// local id, unique among the connections of its dialer (a reconnection
	// gets a new one). The server numbers the same connection on its own:
	// the two ids are unrelated and need not match.
	ID() uint64
	// Send encodes v as a JSON object and sends it on opcode op. It does
	// not wait: it returns an error for a value that is not a JSON object, a
	// frame that does not fit the connection's message size, a full outbound
	// queue or a closed connection. Frames sent on one connection arrive in
	// the order Send was called.
	Send(op codec.Opcode, v any) error
	// SendRaw sends the already-encoded JSON object obj on opcode op, as
	// Send does. obj is validated and copied before SendRaw returns; the
	// caller keeps it.
	SendRaw(op codec.Opcode, obj []byte) error
	// Call sends a request on opcode op and waits for the peer's reply,
	// decoding it into resp (which may be nil). req must encode as a JSON
	// object; a nil req sends {}. It returns when the reply arrives, ctx
	// ends or the connection closes; if the connection's outbound queue is
	// full it first waits for room. A failure returned by the remote handler
	// comes back as an error that [ReasonOf] and errors.As recognise.
	// Calling Call from a callback that runs on the event loop would block
	// the loop that must read the reply: it returns an error instead; use
	// CallAsync there, or call from another goroutine.
	Call(ctx context.Context, op codec.Opcode, req, resp any) error
	// CallAsync sends a request like Call but does not wait: done runs
	// once with what Call would have returned (nil once the reply is
	// decoded into resp), where the connection's callbacks run: on its event
	// loop, so done must not block, or on a worker with a worker pool. resp
	// is written when the reply arrives: leave it alone until done runs. It
	// never blocks: when the request cannot be queued (the connection is
	// closed, its outbound queue full, ctx already ended) it returns the
	// error and done never runs. Safe from any goroutine, inline callbacks
	// included, where Call is not: this is how a callback calls its peer
	// without starting a goroutine.
	CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error
	// Close closes the connection after the frames already sent are
	// written. It returns at once; the disconnect callback runs later.
	Close() error
	// Value returns the value last stored with SetValue, or nil.
	Value() any
	// SetValue stores one application value with the connection (a session,
	// a user id).
	SetValue(v any)
	// RemoteAddr returns the peer's address as text.
	RemoteAddr() string
	// Context returns the connection's context: it is cancelled when the
	// connection closes (and so when its server shuts down), with the
	// disconnect reason as its cause (context.Cause), and [ConnFrom] finds
	// the connection in it. A call a handler makes on the connection's
	// behalf inherits it: c.Call(c.Context(), ...). The protocol carries no
	// deadline of the caller's, so the context has none.
	Context() context.Context
}

// connKey is the context key under which Context carries the connection.
type connKey struct{}

// WithConn returns a copy of parent that carries c, for [ConnFrom]: what a
// Conn's Context is made from. Implementations of Conn use it; handlers
// need not.
func WithConn(parent context.Context, c Conn) context.Context {
	return context.WithValue(parent, connKey{}, c)
}

// ConnFrom returns the connection a context carries: one made by a Conn's
// Context, or derived from it.
func ConnFrom(ctx context.Context) (Conn, bool) {
	c, ok := ctx.Value(connKey{}).(Conn)
	return c, ok
}
