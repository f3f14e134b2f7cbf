// This file holds what an application calls on a Client: send and call
// across its connections, its current connection and its size.

package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// MessageSize returns the frame size of the current connection, learned
// from the server, or 0 before it is known. It is safe for concurrent use.
func (cl *Client) MessageSize() int {
	if c := cl.current(); c != nil {
		return int(c.size.Load())
	}
	return 0
}

// ID returns the local id of the client's current connection, unique
// within its dialer (a reconnection gets a new one), or 0 before the
// first. The server numbers the same connection with a net id of its own.
// It is safe for concurrent use.
func (cl *Client) ID() uint64 {
	if c := cl.current(); c != nil {
		return c.id
	}
	return 0
}

// RemoteAddr returns the address of the server the client is connected to,
// as resolved when the current connection opened, or the address dialled
// before the first. It is safe for concurrent use.
func (cl *Client) RemoteAddr() string {
	if c := cl.current(); c != nil {
		return c.RemoteAddr()
	}
	return cl.addr
}

// Conn returns the client's current connection, the one its callbacks
// get: a server's kind of connection, with its own id, values and context,
// replaced by a new one on each reconnection. It returns nil while the
// client has no connection open (before the first is ready, between a
// drop and the next). What is sent on it goes out on it or fails, where
// the Client's own sends are held for the next connection. It is safe for
// concurrent use.
func (cl *Client) Conn() handler.Conn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	switch {
	case cl.sized && cl.cur != nil:
		return cl.cur
	case cl.prev != nil && !cl.prev.closed.Load():
		return cl.prev // a go-away's, still served until its successor opens
	}
	return nil
}

// Context returns the client's context: cancelled, with the reason as its
// cause, once the client is closed for good (not when it reconnects; each
// connection has a context of its own, see [Client.Conn]). It is safe for
// concurrent use.
func (cl *Client) Context() context.Context { return cl.ctx }

// Send encodes v and sends it on opcode op: the original's rpc. It holds
// the frame while the client has no connection ready (see [WithMaxHeld]).
// It returns an error for a value that is not a JSON object, one too
// large for the message size bounds, or a closed client. It is safe for
// concurrent use.
func (cl *Client) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = cl.supervised(nil, modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to server %s: %w", op, cl.addr, err)
	}
	return nil
}

// SendRaw sends the encoded JSON object obj on opcode op, as Send does;
// obj is validated and copied. It is safe for concurrent use.
func (cl *Client) SendRaw(op codec.Opcode, obj []byte) error {
	var err error
	if c := cl.current(); c != nil {
		obj, err = c.validated(obj) // no second scan of an object its loop handed a callback
	} else {
		obj, err = codec.Object(obj)
	}
	if err == nil {
		err = cl.supervised(nil, modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to server %s: %w", op, cl.addr, err)
	}
	return nil
}

// Call sends a request to the server and waits for its reply, decoding it
// into resp (which may be nil); a nil req sends {}. It fails with ctx's
// error when ctx ends, with [ErrClosed] when the connection closes first,
// and with the remote failure (see [handler.ReasonOf]) when the server's
// handler fails. A burst of calls that uses the outbound credit
// ([WithMaxOutbound]) waits for room rather than failing. It is safe for
// concurrent use, but not from the client's own callbacks on the event
// loop: use CallAsync there.
func (cl *Client) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	for attempt := 0; ; attempt++ {
		c := cl.current()
		if c == nil {
			return fmt.Errorf("engine: call opcode %d: %w", op, ErrClosed)
		}
		if onLoop(c.side) {
			return c.callError(op, ErrCallOnLoop)
		}
		// A connection retired after a go-away refuses new calls before it
		// sends anything: the current connection, newer, takes the call.
		err := c.timedCall(ctx, op, req, resp, cl.supervised)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRetired) || attempt == maxRetired {
			return c.callError(op, err)
		}
	}
}

// maxRetired bounds how many retired connections one call may meet: one
// per go-away that happened while it was being made.
const maxRetired = 8

// CallAsync sends a request to the server without waiting for the reply:
// done runs once with the outcome (nil once the reply is decoded into resp,
// or the error Call would have returned), where the client's callbacks run,
// so it must not block unless the client has a worker pool. If CallAsync
// returns an error, done never runs. It is safe for concurrent use, from
// inline callbacks too.
func (cl *Client) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	for attempt := 0; ; attempt++ {
		c := cl.current()
		if c == nil {
			return fmt.Errorf("engine: call opcode %d: %w", op, ErrClosed)
		}
		err := c.callAsync(ctx, op, req, resp, c.timedDone(op, done), cl.supervised)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errRetired) || attempt == maxRetired {
			return c.callError(op, err)
		}
	}
}

// SetMessageSize changes the frame size of the connection (docs/PROTOCOL.md
// §3): the client sends -2 at the current size, switches its outbound size
// right after, and the server answers with its own -2. n must lie within
// the protocol's limits and the outbound cap, and the server must allow it:
// a server refuses, and closes, a size past its bounds (its own message
// size by default, see [WithSizeBounds]). It fails with [ErrClosed] when
// not connected.
func (cl *Client) SetMessageSize(n int) error {
	c := cl.current()
	err := ErrClosed
	if c != nil && cl.isReady(c) {
		err = c.setMessageSize(n)
	}
	if err != nil {
		return fmt.Errorf("engine: set message size: %w", err)
	}
	return nil
}
