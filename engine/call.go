// This file holds calls on a connection (docs/PROTOCOL.md §5): a request
// that waits for its reply, blocking (Call) or not (CallAsync), and how
// replies, deadlines and closes end them.

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// envelopeStack is the size of the stack buffers envelopes are built in;
// larger ones go to the heap.
const envelopeStack = 512

var (
	errReservedOp = errors.New("opcode reserved for the protocol")
	errNilDone    = errors.New("nil done callback")
)

// Call sends a request and waits for its reply. It is safe for concurrent
// use, except from a callback on an event loop (see onLoop).
func (c *conn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	if onLoop(c.side) {
		return c.callError(op, ErrCallOnLoop)
	}
	if err := c.timedCall(ctx, op, req, resp, c.owner().send); err != nil {
		return c.callError(op, err)
	}
	return nil
}

// sendFunc queues a frame for a connection: its owner's send, or a
// client's supervised (the Client's own calls).
type sendFunc func(c *conn, mode sendMode, op codec.Opcode, obj []byte, id uint64) error

// call is Call without the wrapping of its error, sending through send.
func (c *conn) call(ctx context.Context, op codec.Opcode, req, resp any, send sendFunc) error {
	data, err := encodeRequest(op, req)
	if err != nil {
		return err
	}
	ch := c.side.callChan()
	id, err := c.extra().calls.register(pending{ch: ch})
	if err != nil {
		c.side.calls.Put(ch)
		return err
	}
	// The envelope is copied when it is queued: a stack buffer will do.
	var stack [envelopeStack]byte
	if err := send(c, modeCall, codec.OpRequest, codec.AppendRequest(stack[:0], id, op, data), id); err != nil {
		c.forget(id, ch)
		return err
	}
	select {
	case r := <-ch:
		c.side.calls.Put(ch)
		if r.err != nil {
			return r.err
		}
		if resp != nil {
			if err := codec.Unmarshal(r.data, resp); err != nil {
				return fmt.Errorf("decode reply: %w", err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id, ch)
		return ctx.Err()
	}
}

// callError wraps what ended call op, once, naming the peer.
func (c *conn) callError(op codec.Opcode, err error) error {
	return fmt.Errorf("engine: call opcode %d on %s: %w", op, c.owner().peer(c), err)
}

// encodeRequest checks a call's opcode and encodes its request: a nil req
// is a call without arguments, sent as {} (as a nil result replies {}).
func encodeRequest(op codec.Opcode, req any) ([]byte, error) {
	if op < 0 {
		return nil, errReservedOp
	}
	if req == nil {
		return []byte("{}"), nil
	}
	return codec.Marshal(req)
}

// CallAsync sends a request without waiting for the reply: done runs once
// with the outcome, where the connection's callbacks run. It is safe for
// concurrent use, from inline callbacks too (see [handler.Conn]).
func (c *conn) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	if err := c.callAsync(ctx, op, req, resp, c.timedDone(op, done), c.owner().send); err != nil {
		return c.callError(op, err)
	}
	return nil
}

// callAsync is CallAsync without the wrapping of its error, sending
// through send. A nil return means done will run.
func (c *conn) callAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error), send sendFunc) error {
	if done == nil {
		return errNilDone
	}
	data, err := encodeRequest(op, req)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	a := &asyncCall{op: op, resp: resp, done: done, ctx: ctx}
	x := c.extra()
	id, err := x.calls.register(pending{async: a})
	if err != nil {
		return err
	}
	var stack [envelopeStack]byte
	if err := send(c, modeAsync, codec.OpRequest, codec.AppendRequest(stack[:0], id, op, data), id); err != nil {
		if _, ok := x.calls.take(id); !ok {
			// The connection closed meanwhile and took the call: done runs
			// with that error, and only done reports it.
			return nil
		}
		c.leaveIfIdle(x)
		return err
	}
	if ctx.Done() == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { c.abandon(id) })
	if !x.calls.watch(id, stop) {
		stop() // the call has already ended
	}
	return nil
}

// forget removes an abandoned call. When the entry was still there no
// reply can reach ch any more, and ch goes back to the side's pool;
// otherwise a result is on its way to ch, which is left to the collector.
func (c *conn) forget(id uint64, ch chan callResult) {
	x := c.extra()
	if _, ok := x.calls.take(id); ok {
		c.side.calls.Put(ch)
		c.leaveIfIdle(x)
	}
}

// abandon ends an asynchronous call whose context ended before its reply.
// On the AfterFunc's goroutine: the call is taken from the table on the
// loop, in order with the frames read there, so that a reply read first
// still wins; done then runs with ctx's error where callbacks run. Without
// a loop to run it (the engine has stopped), here.
func (c *conn) abandon(id uint64) {
	take := func() (*asyncCall, error) {
		x := c.extra()
		p, ok := x.calls.take(id)
		if !ok {
			return nil, nil // its reply, or the connection's close, came first
		}
		c.leaveIfIdle(x)
		return p.async, c.callError(p.async.op, p.async.ctx.Err())
	}
	if c.loop.enqueue(task{kind: taskFunc, fn: func() {
		if a, err := take(); a != nil {
			c.dispatch(job{kind: jobAsync, async: a, reason: err}, nil)
		}
	}}, nil) == nil {
		return
	}
	if a, err := take(); a != nil {
		c.safely("call callback", func() { a.done(err) })
	}
}

// complete hands a reply to its waiting call, if it still waits. On the
// loop.
func (c *conn) complete(id uint64, r callResult) {
	x := c.x.Load()
	if x == nil {
		return // no call was ever made: a stray reply
	}
	p, ok := x.calls.take(id)
	switch {
	case !ok: // a stray reply, or one that came too late
	case p.async != nil:
		c.finishAsync(p.async, r) // decodes now: the data is borrowed
	default:
		if r.data != nil {
			r.data = bytes.Clone(r.data) // borrowed from the frame
		}
		p.ch <- r
		c.loop.woke = true
	}
	c.leaveIfIdle(x) // the last call it had to finish
}

// leaveIfIdle lets a retired connection go once no call waits on it (see
// Client.retire): after a reply, and after a call that was taken back
// without one. Safe from any goroutine.
func (c *conn) leaveIfIdle(x *connExtra) {
	if x.calls.retiredIdle() {
		c.leave()
	}
}

// finishAsync ends an asynchronous call on the loop: it decodes the reply
// into resp and runs done where callbacks run.
func (c *conn) finishAsync(a *asyncCall, r callResult) {
	if a.stop != nil {
		a.stop()
	}
	err := r.err
	if err == nil && a.resp != nil {
		if derr := codec.Unmarshal(r.data, a.resp); derr != nil {
			err = fmt.Errorf("decode reply: %w", derr)
		}
	}
	if err != nil {
		err = c.callError(a.op, err)
	}
	c.dispatch(job{kind: jobAsync, async: a, reason: err}, nil)
}

// failCalls fails every pending call with err and refuses new ones. On
// the loop, when the connection closes.
func (c *conn) failCalls(err error) {
	x := c.x.Load()
	if x == nil {
		return
	}
	for _, p := range x.calls.shutAll() {
		if p.async != nil {
			c.finishAsync(p.async, callResult{err: err})
			continue
		}
		p.ch <- callResult{err: err}
		c.loop.woke = true
	}
}

// remoteError is a failure the peer sent back for a call: it reads
// "reason: message" and unwraps to the handler's typed failure, so that
// errors.As and [handler.ReasonOf] see it.
type remoteError struct {
	reason string
	err    error
}

func remoteFailure(reason, message string) error {
	return &remoteError{reason: reason, err: handler.FromWire(reason, message)}
}

func (e *remoteError) Error() string {
	var he *handler.Error
	if errors.As(e.err, &he) {
		return e.err.Error() // already "reason: message"
	}
	return e.reason + ": " + e.err.Error()
}

func (e *remoteError) Unwrap() error { return e.err }

// reply answers the peer's call id on op with res, or with the failure f:
// from run on the loop, or, for a handler's [handler.Pending], from the
// goroutine that resolved it (every step here is safe from any).
func (c *conn) reply(op codec.Opcode, id uint64, res any, f *handler.Error) {
	if f == nil {
		var obj []byte
		var err error
		if res == nil {
			obj = []byte("{}")
		} else if obj, err = codec.Marshal(res); err != nil {
			f = &handler.Error{Reason: handler.ReasonInternal, Message: "reply does not encode as a JSON object"}
			c.side.cfg.logger.Error("simplerpc: call reply", "conn", c.id, "op", int32(op), "err", err)
		}
		if f == nil {
			var stack [envelopeStack]byte
			if err := c.enqueue(modeSend, codec.OpReply, codec.AppendReply(stack[:0], id, obj), 0); err != nil {
				// Too large for any frame: say so rather than leave the
				// caller waiting.
				f = &handler.Error{Reason: handler.ReasonInternal, Message: "reply too large"}
			}
		}
	}
	if f != nil {
		c.sendFailure(codec.OpReplyFailure, &id, f.Reason, f.Message)
	}
	c.loop.stats.callsIn.Add(-1)
}
