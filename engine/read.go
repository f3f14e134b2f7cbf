// This file holds a connection's read path: what arrived is decoded frame
// by frame straight from the wire's buffer, rate-limited and acted on.
package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// traffic handles what arrived on a connection: the layer's handshake if
// any, then every complete frame up to the per-wake cap. On the loop.
func (c *conn) traffic() {
	l := c.loop
	l.enter()
	defer l.leave()
	// gnet may have written requests from its buffer since the last look.
	c.release()
	if cfg := &c.side.cfg; cfg.idleTimeout > 0 || cfg.pingTimeout > 0 {
		// Read only by the idle sweep and the heartbeat: a clock read per
		// read is not free on every machine.
		c.lastRecv.Store(time.Now().UnixNano())
	}
	if c.tl != nil {
		ready, err := c.tl.pump()
		if err != nil {
			c.closeNow(err) // the layer's reason, with its own sentinel
			return
		}
		if !ready {
			return
		}
	}
	if !c.started {
		if c.started = c.owner.ready(c); !c.started {
			return
		}
	}
	r := c.io
	for n := 0; !c.closed.Load(); n++ {
		if r.InboundBuffered() < c.inSize {
			break
		}
		if n == c.side.cfg.maxPerWake {
			_ = c.gc.Wake(nil)
			break
		}
		buf, err := r.Peek(c.inSize)
		if err != nil {
			break
		}
		size := c.inSize
		c.handleFrame(buf)
		if c.closed.Load() {
			break // gnet released the buffers when it closed the connection
		}
		_, _ = r.Discard(size)
	}
}

// handleFrame decodes and acts on one inbound frame. buf is borrowed from
// the wire until the caller discards it.
func (c *conn) handleFrame(buf []byte) {
	op, obj, call, err := codec.DecodeFrame(buf)
	if err != nil && !errors.Is(err, codec.ErrMalformedCall) {
		c.malformed(err)
		return
	}
	if tap := c.side.cfg.tap; tap != nil {
		c.tapInline(tap, op, obj)
	}
	// Every frame the application sees takes a token; a failure over the
	// limit is dropped unanswered, so that two limited peers cannot trade
	// refusals.
	if op >= 0 && !c.allow(codec.OpFailure, nil) || op == codec.OpFailure && !c.allow(0, nil) {
		return
	}
	switch {
	case op >= 0:
		c.dispatch(job{kind: jobFrame, op: op}, obj)
	case op == codec.OpFailure:
		// To the router's -1 callbacks, which answer nothing: a failure
		// answered with a failure could bounce between two peers.
		if c.side.router.Handles(codec.OpFailure) {
			c.dispatch(job{kind: jobFrame, op: op}, obj)
		}
	case op == codec.OpMessageSize:
		c.sizeFrame(obj)
	case op == codec.OpRequest:
		if err != nil {
			c.malformed(err)
			return
		}
		if !c.allow(codec.OpReplyFailure, &call.ID) {
			return // the caller gets its refusal with its id
		}
		c.dispatch(job{kind: jobCall, op: call.Op, id: call.ID}, call.Data)
	case op == codec.OpReply || op == codec.OpReplyFailure:
		switch {
		case err != nil:
			c.badReply(obj, err)
		case op == codec.OpReply:
			c.complete(call.ID, callResult{data: call.Data})
		default:
			c.complete(call.ID, callResult{err: remoteFailure(call.Reason, call.Message)})
		}
	case op == codec.OpPing:
		_ = c.loop.enqueue(task{kind: taskSend, op: codec.OpPong, c: c}, obj)
	}
	// Other negative opcodes (-7 pong and any unknown one) only count as
	// traffic.
}

// malformed answers a frame that does not decode with a MalformedPayload
// failure, whose message is the original's where it has one.
func (c *conn) malformed(err error) {
	msg := err.Error()
	var me *codec.MalformedError
	if errors.As(err, &me) {
		msg = me.Message
	}
	c.sendFailure(codec.OpFailure, nil, handler.ReasonMalformedPayload, msg)
}

// badReply fails the call a reply whose envelope does not read was meant
// for, if its id can be read at all, rather than leave the caller waiting
// for its deadline.
func (c *conn) badReply(obj []byte, err error) {
	var m struct {
		ID *uint64 `json:"id"`
	}
	if codec.Unmarshal(obj, &m) == nil && m.ID != nil {
		c.complete(*m.ID, callResult{err: err})
	}
}

// allow applies the inbound rate limit. A refused frame is answered with a
// failure on op (with the call's id for a request), or not at all for op 0.
func (c *conn) allow(op codec.Opcode, id *uint64) bool {
	if x := c.x.Load(); x == nil || x.limiter == nil || x.limiter.Allow() {
		c.strikes = 0
		return true
	}
	c.strikes++
	if int(c.strikes) >= c.side.cfg.rateStrikes {
		// Close after the replies and failures already queued, as sizeFrame
		// does: closing now would discard them. Frames read meanwhile are
		// refused without an answer.
		if int(c.strikes) == max(c.side.cfg.rateStrikes, 1) {
			_ = c.loop.enqueue(task{kind: taskClose, c: c, err: ErrRateLimited}, nil)
		}
		return false
	}
	if op != 0 {
		c.sendFailure(op, id, ReasonRateLimited, "Too many frames: rate limit exceeded")
	}
	return false
}

// sizeFrame handles a -2 frame from the peer (docs/PROTOCOL.md §3).
func (c *conn) sizeFrame(obj []byte) {
	var m struct {
		Size *int64 `json:"message_size"`
	}
	err := codec.Unmarshal(obj, &m)
	switch {
	case err != nil || m.Size == nil:
		c.sendFailure(codec.OpFailure, nil, handler.ReasonMalformedPayload, "Expected argument 'message_size' in opcode -2")
		return
	case *m.Size < int64(c.side.cfg.minSize) || *m.Size > int64(c.side.cfg.maxSize):
		c.refuseSize(*m.Size)
		return
	}
	n := int(*m.Size)
	c.inSize = n
	if c.outSize != n {
		if int64(n) > c.size.Load() {
			c.size.Store(int64(n)) // replies queued after the announcement may use it
		}
		_ = c.loop.enqueue(task{kind: taskAnnounce, c: c, size: n}, nil)
	}
}

// refuseSize answers a -2 frame whose size is out of bounds with an
// InvalidMessageSize failure, then closes the connection after it
// (docs/PROTOCOL.md §3).
func (c *conn) refuseSize(n int64) {
	cfg := &c.side.cfg
	c.sendFailure(codec.OpFailure, nil, ReasonInvalidSize, fmt.Sprintf("message_size %d is outside [%d, %d]",
		n, cfg.minSize, cfg.maxSize))
	_ = c.loop.enqueue(task{kind: taskClose, c: c, err: fmt.Errorf("%w: %d", ErrSizeOutOfBounds, n)}, nil)
}
