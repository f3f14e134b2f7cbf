// This file holds a connection's read path: what arrived is decoded frame
// by frame straight from the wire's buffer, rate-limited and acted on.

package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	// gnet may have written from its buffer since the last look: frames
	// waiting for credit may fit now.
	c.release()
	if cfg := &c.side.cfg; cfg.idleTimeout > 0 || cfg.pingTimeout > 0 {
		// Read only by the idle sweep and the heartbeat: a clock read per
		// read is not free on every machine.
		c.lastRecv.Store(time.Now().UnixNano())
	}
	if tl := c.layered(); tl != nil {
		// A paused connection's layer does no work: what arrives waits in
		// gnet's buffer, under WithMaxInbound, as frames do. What a layer
		// writes by itself (pongs, TLS alerts) is under WithMaxOutbound
		// (conn.layerOut).
		if tl.ready && c.paused {
			c.partialAt = 0 // the wait is ours, not the peer's
			c.pause(c.gc.InboundBuffered() + tl.InboundBuffered())
			return
		}
		ready, err := tl.pump()
		if err != nil {
			c.closeNow(err) // the layer's reason, with its own sentinel
			return
		}
		if !ready {
			return
		}
	}
	if !c.started {
		if c.started = c.owner().ready(c); !c.started {
			return
		}
	}
	r := c.wire()
	n := 0
	// What is buffered is asked once: only this loop takes from it, and
	// no read adds to it while the frames are handled. A traffic nested in
	// a callback may take frames meanwhile: avail is then too large, and
	// Peek, which finds fewer bytes, ends the loop.
	avail := r.InboundBuffered()
	// So is what gnet holds of the output, for the back-pressure check:
	// the replies to these frames are built and written as the round
	// ends, and only a write adds to it. A write made meanwhile would
	// only make the pause come a read later; the outbound cap itself is
	// applied as each frame is written (overLimit).
	held := c.outbound()
	for ; !c.closed.Load() && !c.readsHeld(); n++ {
		size := int(c.inSize)
		if avail < size {
			break
		}
		if c.backedUp(held) {
			c.pause(r.InboundBuffered())
			break
		}
		if n == c.side.cfg.maxPerWake {
			_ = c.gc.Wake(nil)
			break
		}
		buf, err := r.Peek(size)
		if err != nil {
			break
		}
		c.handleFrame(buf)
		if c.closed.Load() {
			break // gnet released the buffers when it closed the connection
		}
		_, _ = r.Discard(size)
		avail -= size
	}
	// A partial frame left: note when it began to wait, for the frame
	// deadline (sweep.go); a frame completed since starts the wait anew.
	// Frames left unread by a pause wait for us, not for the peer. With a
	// layer, a frame is partial too while the layer holds part of what
	// carries it: a TLS record, a WebSocket frame or message.
	partial := r.InboundBuffered() > 0
	if tl := c.layered(); tl != nil && !partial {
		partial = tl.partial()
	}
	switch {
	case c.paused:
		c.partialAt = 0
	case n > 0 || !partial:
		c.partialAt = 0
		if partial {
			c.partialAt = l.tick
		}
	case c.partialAt == 0:
		c.partialAt = l.tick
	}
}

// Reading pauses while the connection's output uses over half of its
// outbound credit (credit.go): frames are left unread, in the wire's
// buffer, until the output has drained to a quarter of [WithMaxOutbound];
// a peer that reads what it is sent is then slowed instead of closed as a
// slow consumer. gnet has no way to stop reading a socket (GNET.md §8), so
// the bytes move into its inbound buffer: a paused connection that holds
// more unread input than [WithMaxInbound] closes with [ErrInboundFull].
// gnet tells nobody when its output drains, so a paused connection is
// looked at again on the loop's recheck timer (conn.recheck).

// backedUp reports whether reading must pause: the output uses over half
// of the credit, held being what the wire holds of it (c.outbound). On
// the loop.
func (c *conn) backedUp(held int) bool {
	return int(c.queued.Load())+held+c.outLen() > c.side.cfg.maxOutbound/2
}

// pause stops reading frames until the output drains, or closes a peer
// that holds too much unread input (buffered bytes). On the loop.
func (c *conn) pause(buffered int) {
	if buffered > c.side.cfg.maxInbound {
		c.closeNow(fmt.Errorf("%w: %d bytes unread while the peer's output is backed up", ErrInboundFull, buffered))
		return
	}
	if !c.paused {
		c.paused = true
		c.side.paused.Add(1)
		c.waitCredit()
	}
	c.loop.hold(c, buffered)
}

// resume reads again the frames a paused connection left unread, once its
// output has drained to a quarter of WithMaxOutbound; else it waits for the
// next recheck. On the loop, from the recheck timer.
func (c *conn) resume() {
	if c.closed.Load() {
		return
	}
	if c.used() > c.side.cfg.maxOutbound/4 {
		c.waitCredit()
		return
	}
	c.paused = false
	c.loop.hold(c, 0)
	c.traffic()
}

// Reasons reading is held: while any is set, traffic reads no frame, and
// what arrives waits in the wire's buffer. Each is set and cleared by the
// part it names, through holdReads and releaseReads, never by another.
const (
	holdAuth     uint8 = 1 << iota // the authenticator runs (auth.go)
	holdHandover                   // the connection is being handed over (handover.go)
)

// holdReads stops reading frames for why, until releaseReads(why). On the
// loop.
func (c *conn) holdReads(why uint8) { c.extra().holds |= why }

// releaseReads clears why and, once nothing holds reading, reads the
// frames that waited. On the loop.
func (c *conn) releaseReads(why uint8) {
	x := c.extra()
	x.holds &^= why
	if x.holds == 0 && !c.closed.Load() {
		c.traffic()
	}
}

// readsHeld reports whether anything holds reading. On the loop.
func (c *conn) readsHeld() bool {
	x := c.x.Load()
	return x != nil && x.holds != 0
}

// handleFrame decodes and acts on one inbound frame. buf is borrowed from
// the wire until the caller discards it.
func (c *conn) handleFrame(buf []byte) {
	op, obj, call, err := codec.DecodeFrame(buf)
	// Every frame takes a token, whatever it is: a malformed one, a ping or
	// a size frame as much as an application's. The refusal goes back on
	// the frame's own terms: a request's with its id; none for a failure, so
	// that two limited peers cannot trade refusals.
	switch {
	case op == codec.OpRequest && err == nil:
		if !c.allow(codec.OpReplyFailure, &call.ID) {
			return
		}
	case op == codec.OpFailure && err == nil:
		if !c.allow(0, nil) {
			return
		}
	default:
		if !c.allow(codec.OpFailure, nil) {
			return
		}
	}
	c.loop.stats.frameIn(op, len(buf), obj)
	if err != nil && !errors.Is(err, codec.ErrMalformedCall) {
		c.malformed(err)
		return
	}
	if tap := c.side.cfg.tap; tap != nil {
		c.tapInline(tap, op, obj)
	}
	if x := c.x.Load(); x != nil {
		if x.bad > 0 {
			x.bad-- // pays back a sixteenth of a malformed frame
		}
		if x.creds != credsNone {
			c.credsAnswer(x, op, obj) // a client's: is this the refusal of its credentials?
		}
	}
	if !c.authenticated() {
		c.authFrame(op, obj, call)
		return
	}
	switch {
	case op >= 0:
		c.dispatch(job{kind: jobFrame, op: op}, obj)
	case op == codec.OpFailure:
		c.owner().refused(c, obj)
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
		c.loop.stats.callsIn.Add(1) // until run answers it, or dispatch refuses it
		c.dispatch(job{kind: jobCall, op: call.Op, id: call.ID}, call.Data)
	case op == codec.OpReply || op == codec.OpReplyFailure:
		c.loop.stats.publish() // the reply may wake its caller (stats.go)
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
	case op == codec.OpGoAway:
		c.owner().goAway(c)
	case op == codec.OpAuth:
		c.owner().authed(c, obj)
	}
	// Other negative opcodes (-7 pong and any unknown one) only count as
	// traffic.
}

// malformed answers a frame that does not decode with a MalformedPayload
// failure, whose message is the original's where it has one. Each adds
// malformedWeight to the connection's score and each well-formed frame
// takes 1 off: at WithMaxMalformed frames' worth the connection closes,
// after the failures, so that a peer that is out of step, or hostile,
// does not get an answer per frame for good, even one that slips a valid
// frame between its malformed ones.
func (c *conn) malformed(err error) {
	msg := err.Error()
	var me *codec.MalformedError
	if errors.As(err, &me) {
		msg = me.Message
	}
	c.sendFailure(codec.OpFailure, nil, handler.ReasonMalformedPayload, msg)
	if limit := c.side.cfg.maxMalformed; limit > 0 {
		full := uint16(limit * malformedWeight)
		if x := c.extra(); x.bad < full {
			if x.bad = min(x.bad+malformedWeight, full); x.bad == full {
				_ = c.loop.enqueue(task{kind: taskClose, c: c,
					err: fmt.Errorf("%w: too many malformed frames (%d in a row, or more than 1 in %d)", ErrProtocol, limit, malformedWeight)}, nil)
			}
		}
	}
}

// malformedWeight is what a malformed frame weighs against the well-formed
// ones that pay it back; maxMalformedLimit keeps the score in a uint16.
const (
	malformedWeight   = 16
	maxMalformedLimit = 4095
)

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
	x := c.x.Load()
	if x == nil || x.limiter == nil || x.limiter.Allow() {
		if x != nil {
			x.strikes = 0
		}
		return true
	}
	x.strikes++
	if x.strikes >= c.side.cfg.rateStrikes {
		// Close after the replies and failures already queued, as sizeFrame
		// does: closing now would discard them. Frames read meanwhile are
		// refused without an answer.
		if x.strikes == max(c.side.cfg.rateStrikes, 1) {
			_ = c.loop.enqueue(task{kind: taskClose, c: c, err: ErrRateLimited}, nil)
		}
		return false
	}
	if op != 0 {
		c.sendFailure(op, id, ReasonRateLimited, "Too many frames: rate limit exceeded")
	}
	return false
}

// sizeFrame handles a -2 frame from the peer (docs/PROTOCOL.md §3). One
// rule for every bad size: a message_size that is not an integer within
// the bounds (a fraction, a string, 1e400, 2^63, 0, -1) is refused with an
// InvalidMessageSize failure and a close; only a frame without one is
// merely malformed.
func (c *conn) sizeFrame(obj []byte) {
	var m struct {
		Size json.RawMessage `json:"message_size"`
	}
	if err := codec.Unmarshal(obj, &m); err != nil || m.Size == nil {
		c.malformed(handler.MalformedPayload("Expected argument 'message_size' in opcode -2"))
		return
	}
	n, err := strconv.ParseInt(string(m.Size), 10, 64)
	ours := err == nil && n == int64(c.outSize) // the size this side announced
	if err != nil || !ours && (n < int64(c.side.cfg.minSize) || n > int64(c.side.cfg.maxSize)) {
		c.refuseSize(string(m.Size))
		return
	}
	c.inSize = int32(n)
	// Compared with the size the announcements already queued will set, not
	// the one in force: two -2 frames in one read must both be answered
	// (TestSizeAnnouncedTwiceInOneRead).
	x := c.extra()
	next := int(c.outSize)
	if x.nextOut != 0 {
		next = x.nextOut
	}
	if next != int(n) {
		if n > int64(c.size.Load()) {
			c.size.Store(int32(n)) // replies queued after the announcement may use it (n is within the size bounds)
		}
		x.nextOut = int(n)
		_ = c.loop.enqueue(task{kind: taskAnnounce, c: c, size: int(n)}, nil)
	}
}

// refuseSize answers a -2 frame whose size (as the peer wrote it) is out of
// bounds with an InvalidMessageSize failure, then closes the connection
// after it (docs/PROTOCOL.md §3).
func (c *conn) refuseSize(size string) {
	cfg := &c.side.cfg
	if len(size) > 32 {
		size = size[:32] + "..."
	}
	c.sendFailure(codec.OpFailure, nil, ReasonInvalidSize, fmt.Sprintf("message_size %s is not an integer within [%d, %d]",
		size, cfg.minSize, cfg.maxSize))
	_ = c.loop.enqueue(task{kind: taskClose, c: c, err: fmt.Errorf("%w: %s", ErrSizeOutOfBounds, size)}, nil)
}
