// This file holds the Client as a handler.Conn: what an application calls
// on it (send, call, its values, its size), and the connection the
// reconnect callback gets.

package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
)

// sessionConn is the connection the reconnect callback gets: the client,
// but what it sends goes out at once, ahead of the frames the client held
// while it was disconnected.
type sessionConn struct {
	*Client
	c *conn
}

// Send sends v ahead of the held frames.
func (s *sessionConn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = s.c.enqueue(modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, s.peer(s.c), err)
	}
	return nil
}

// SendRaw sends obj ahead of the held frames.
func (s *sessionConn) SendRaw(op codec.Opcode, obj []byte) error {
	obj, err := s.c.validated(obj)
	if err == nil {
		err = s.c.enqueue(modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, s.peer(s.c), err)
	}
	return nil
}

// Call calls ahead of the held frames.
func (s *sessionConn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	if err := s.c.call(ctx, op, req, resp, direct); err != nil {
		return s.c.callError(op, err)
	}
	return nil
}

// CallAsync calls ahead of the held frames, without waiting.
func (s *sessionConn) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	if err := s.c.callAsync(ctx, op, req, resp, done, direct); err != nil {
		return s.c.callError(op, err)
	}
	return nil
}

// MessageSize returns the frame size of the current connection, learned
// from the server, or 0 before it is known.
func (cl *Client) MessageSize() int {
	if c := cl.current(); c != nil {
		return int(c.size.Load())
	}
	return 0
}

// ID returns the client connection's local id, unique within its dialer.
// The server numbers the same connection with a net id of its own.
func (cl *Client) ID() uint64 {
	if c := cl.current(); c != nil {
		return c.id
	}
	return 0
}

// RemoteAddr returns the address of the server the client is connected to,
// as resolved when the connection opened.
func (cl *Client) RemoteAddr() string {
	if c := cl.current(); c != nil {
		return c.RemoteAddr()
	}
	return cl.addr
}

// Value returns the application value, kept across reconnections.
func (cl *Client) Value() any {
	cl.valMu.Lock()
	defer cl.valMu.Unlock()
	return cl.val
}

// SetValue stores an application value with the client.
func (cl *Client) SetValue(v any) {
	cl.valMu.Lock()
	cl.val = v
	cl.valMu.Unlock()
}

// Load returns the value stored under key (handler.Store), kept across
// reconnections.
func (cl *Client) Load(key any) (any, bool) {
	cl.valMu.Lock()
	defer cl.valMu.Unlock()
	v, ok := cl.vals[key]
	return v, ok
}

// Store stores value under key, or removes it for nil (handler.Store).
func (cl *Client) Store(key, value any) {
	cl.valMu.Lock()
	defer cl.valMu.Unlock()
	cl.vals = storeValue(cl.vals, key, value)
}

// Context returns the client's context: cancelled, with the reason as its
// cause, once the client is closed for good (not when it reconnects).
func (cl *Client) Context() context.Context { return cl.ctx }

// Send encodes v and sends it on opcode op: the original's rpc. It returns
// an error for a value that is not a JSON object, one too large for the
// message size bounds, or a closed client.
func (cl *Client) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = cl.send(nil, modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to server %s: %w", op, cl.addr, err)
	}
	return nil
}

// SendRaw sends the encoded JSON object obj on opcode op; obj is validated
// and copied.
func (cl *Client) SendRaw(op codec.Opcode, obj []byte) error {
	var err error
	if c := cl.current(); c != nil {
		obj, err = c.validated(obj) // no second scan of an object its loop handed a callback
	} else {
		obj, err = codec.Object(obj)
	}
	if err == nil {
		err = cl.send(nil, modeSend, op, obj, 0)
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
		// A connection retired after a go-away refuses new calls before it
		// sends anything: the current connection, newer, takes the call.
		if err := c.Call(ctx, op, req, resp); !errors.Is(err, errRetired) || attempt == maxRetired {
			return err
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
		if err := c.CallAsync(ctx, op, req, resp, done); !errors.Is(err, errRetired) || attempt == maxRetired {
			return err
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
