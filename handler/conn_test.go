package handler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

var _ handler.Conn = (*fakeConn)(nil)

var errFakeClosed = errors.New("fake: connection closed")

// sent is one frame a fakeConn was asked to send.
type sent struct {
	op  codec.Opcode
	obj string
}

// fakeConn implements handler.Conn without a network. Sends are encoded
// into real frames with codec (so they obey the same rules as the engine's)
// and recorded; if out is set they are also printed, one line per frame.
// Call dispatches straight into peer, the router of the other side.
type fakeConn struct {
	id   uint64
	size int             // frame size; codec.DefaultMessageSize if 0
	out  io.Writer       // where sends are printed, or nil
	peer *handler.Router // answers Call, or nil

	mu     sync.Mutex // guards the fields below
	sent   []sent
	value  any
	closed bool
}

func (c *fakeConn) ID() uint64 { return c.id }

func (c *fakeConn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendRaw(op, obj)
}

func (c *fakeConn) SendRaw(op codec.Opcode, obj []byte) error {
	size := c.size
	if size == 0 {
		size = codec.DefaultMessageSize
	}
	frame, err := codec.AppendRaw(nil, size, op, obj)
	if err != nil {
		return err
	}
	gotOp, gotObj, err := codec.Decode(frame)
	if err != nil {
		return fmt.Errorf("fake: own frame does not decode: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errFakeClosed
	}
	c.sent = append(c.sent, sent{op: gotOp, obj: string(gotObj)})
	if c.out != nil {
		fmt.Fprintf(c.out, "send %d %s\n", gotOp, gotObj)
	}
	return nil
}

// Call runs the peer's call handler in this goroutine, passing the request
// and the reply through JSON as the engine would, and turns a failure back
// into an error with handler.FromWire.
func (c *fakeConn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.peer == nil {
		return errors.New("fake: no peer")
	}
	obj, err := codec.Marshal(req)
	if err != nil {
		return err
	}
	res, fail := c.peer.DispatchCall(&fakeConn{id: c.id + 1}, op, obj)
	if fail != nil {
		return handler.FromWire(fail.Reason, fail.Message)
	}
	if res == nil {
		res = struct{}{}
	}
	out, err := codec.Marshal(res)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	return codec.Unmarshal(out, resp)
}

// CallAsync makes the call with Call and hands its outcome to done, in
// this goroutine: the fake has no event loop to run it on.
func (c *fakeConn) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done(c.Call(ctx, op, req, resp))
	return nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *fakeConn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}

func (c *fakeConn) SetValue(v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.value = v
}

func (c *fakeConn) RemoteAddr() string { return fmt.Sprintf("fake:%d", c.id) }

func (c *fakeConn) Context() context.Context { return handler.WithConn(context.Background(), c) }

// frames returns a copy of what was sent so far.
func (c *fakeConn) frames() []sent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sent(nil), c.sent...)
}
