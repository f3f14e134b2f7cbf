// This file holds a connection's write path: sends queued from any
// goroutine, frames built on the loop at the size in force, written once a
// round, and the slow-consumer policy.

package engine

import (
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// sendMode says what a frame does when the outbound credit is used up.
type sendMode uint8

const (
	modeSend  sendMode = iota // ErrOutboundFull, and the slow-consumer policy applies
	modeCall                  // a Call's request: it waits on the loop for room
	modeAsync                 // a CallAsync's request: ErrOutboundFull, the connection untouched
)

// Send encodes v and queues it. It is safe for concurrent use.
func (c *conn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = c.owner().send(c, modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, c.owner().peer(c), err)
	}
	return nil
}

// SendRaw validates obj and queues a copy. An inline callback that sends
// back the object it was handed, unchanged, does not have it validated
// again, and on a server its frame is built at once when nothing is
// queued before it (see handed, sendHanded). It is safe for concurrent
// use.
func (c *conn) SendRaw(op codec.Opcode, obj []byte) error {
	if err := c.sendRaw(op, obj); err != nil {
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, c.owner().peer(c), err)
	}
	return nil
}

// enqueue queues a valid, compact object for the loop to write, from any
// goroutine. The frame is built on the loop, at the size in force when it
// is written, so that size changes are handled in one place.
//
// Every frame is charged at the frame size, what the loop will hold once
// it is built, against the connection's outbound credit (credit.go): a
// send to c.queued, counted against the credit, refused past it with
// ErrOutboundFull and the slow-consumer policy; a call's request to the
// frames waiting for credit, which a Call's request joins on the loop
// when there is no room, and which an asynchronous call, which must not
// wait, finds full with ErrOutboundFull, the connection left alone. id is
// the call of a request.
func (c *conn) enqueue(mode sendMode, op codec.Opcode, obj []byte, id uint64) error {
	if c.side.closing.Load() {
		return c.side.closedErr
	}
	if c.closed.Load() {
		return ErrClosed
	}
	limit := int(c.size.Load())
	if limit == 0 {
		limit = c.side.cfg.maxSize
	}
	if n := len(obj) + opLen(op); n > limit {
		return fmt.Errorf("%w: %d bytes, message size is %d", codec.ErrFrameTooLarge, n, limit)
	}
	// Charged at the frame size: what the loop will hold once it is built.
	charge := int64(limit)
	t := task{kind: taskSend, op: op, c: c, size: int(charge), id: id}
	if mode == modeSend {
		if c.queued.Add(charge) > int64(c.side.cfg.maxOutbound) {
			c.queued.Add(-charge)
			c.slow()
			return ErrOutboundFull
		}
	} else {
		t.kind = taskCall
		if !c.extra().credit.charge(charge, c.side.cfg.maxOutbound, mode == modeAsync) {
			return ErrOutboundFull
		}
	}
	if err := c.loop.enqueue(t, obj); err != nil {
		c.uncharge(t)
		return err
	}
	return nil
}

// uncharge gives back what a task that will not be written was charged.
func (c *conn) uncharge(t task) {
	if t.kind == taskCall {
		c.extra().credit.uncharge(int64(t.size))
		return
	}
	c.queued.Add(-int64(t.size))
}

// slow applies the slow-consumer policy from any goroutine.
func (c *conn) slow() {
	if c.side.cfg.slowPolicy == SlowDrop {
		c.side.dropped.Add(1)
		return
	}
	c.closeWith(ErrSlowConsumer)
}

// flushAt is the size of a connection's output buffer past which a round
// writes it before building more frames.
const flushAt = 64 << 10

// opLen is the length of op written in decimal.
func opLen(op codec.Opcode) int {
	n, v := 1, int64(op)
	if v < 0 {
		n, v = 2, -v
	}
	for ; v >= 10; v /= 10 {
		n++
	}
	return n
}

// setOutSize changes the outbound frame size, on the loop.
func (c *conn) setOutSize(n int) {
	c.outSize = int32(n) // at most codec.MaxMessageSize
	c.size.Store(int32(n))
}

// ---- On the loop ----

// writeSend writes a send's frame; t.size leaves c.queued as it joins the backlog.
func (c *conn) writeSend(t *task, obj []byte) {
	if x := c.x.Load(); x != nil && x.credit.blocked() {
		x.credit.wait(waitFrame{op: t.op, obj: clone(obj), charge: t.size}) // still charged to c.queued
		return
	}
	c.queued.Add(-int64(t.size)) // 0 for the engine's own frames
	c.put(t.op, obj)
}

// writeObj writes a frame of the engine's own, such as a failure.
func (c *conn) writeObj(op codec.Opcode, obj []byte) {
	if x := c.x.Load(); x != nil && x.credit.blocked() {
		x.credit.wait(waitFrame{op: op, obj: clone(obj)})
		return
	}
	c.put(op, obj)
}

// put builds a frame for obj at the current size and adds it to out, under
// the slow-consumer policy. Frames waiting for credit must not be before
// it (see credit).
func (c *conn) put(op codec.Opcode, obj []byte) {
	if c.outSize == 0 {
		// Only the engine's own frames (a failure, a pong) can get here
		// before a client knows the size: the application's are held by the
		// Client until then. There is no size to write them at.
		return
	}
	if c.overLimit(int(c.outSize)) {
		return
	}
	c.appendObj(op, obj)
}

// appendObj adds a frame for obj at the current size to out. It reports
// whether it did.
func (c *conn) appendObj(op codec.Opcode, obj []byte) bool {
	o := c.grow()
	if o == nil {
		return false
	}
	// Objects reach the loop validated (Marshal, Object, Decode, or built
	// here from validated parts): the frame is built without a rescan.
	out, err := codec.AppendValidated(o.b, int(c.outSize), op, obj)
	if err != nil {
		c.side.warnDropped.warn(c.side.cfg.logger, "last", c.id, "op", int32(op), "err", err)
		c.unfit(op, obj, err)
		return false
	}
	o.b = out
	c.loop.stats.frameOut(op, int(c.outSize))
	return true
}

// grow readies out for another frame and returns it: lent if the
// connection had none, or, past flushAt, what it holds written first. It
// returns nil if that write closed the connection.
func (c *conn) grow() *outBuf {
	o := c.lend()
	if len(o.b) >= flushAt {
		// A long burst: write what is built so far, so that the outbound
		// limit measures what the peer has not read, not what this round
		// has not written yet. gnet copies what the socket does not take.
		out := o.b
		o.b = out[:0]
		c.flushOut(out)
		if c.closed.Load() {
			return nil
		}
	}
	return o
}

// lend returns the connection's output buffer, lending it one of the
// loop's, and putting it on the loop's dirty list, if it has none. On the
// loop.
func (c *conn) lend() *outBuf {
	if c.out == nil {
		c.out = c.loop.buffer()
		c.loop.dirty = append(c.loop.dirty, c) // the round flushes it (loop.flush)
	}
	return c.out
}

// outLen is the bytes built in this round and not yet flushed. On the
// loop.
func (c *conn) outLen() int {
	if c.out == nil {
		return 0
	}
	return len(c.out.b)
}

// unfit answers for a call frame that did not fit the frame size, so that
// no caller waits for its deadline: a request fails its own call with err,
// a reply is replaced by a reply failure.
func (c *conn) unfit(op codec.Opcode, obj []byte, err error) {
	if op != codec.OpRequest && op != codec.OpReply {
		return
	}
	var m struct {
		ID uint64 `json:"id"`
	}
	if codec.Unmarshal(obj, &m) != nil {
		return
	}
	if op == codec.OpRequest {
		c.complete(m.ID, callResult{err: err})
		return
	}
	c.writeFailure(&failFrame{op: codec.OpReplyFailure, id: m.ID, hasID: true,
		reason: handler.ReasonInternal, message: "reply too large"})
}

// writeFrame writes a ready frame, directly when nothing is waiting before
// it.
func (c *conn) writeFrame(f []byte) {
	if x := c.x.Load(); x != nil && x.credit.blocked() {
		x.credit.wait(waitFrame{frame: clone(f)})
		return
	}
	c.putFrame(f)
}

// bufferFrame is writeFrame for frames that more for c are likely to
// follow in this round, as the frames a handover carried: they join c's
// output buffer, which the round writes once, rather than a write each.
// f is one frame or several at c's size.
func (c *conn) bufferFrame(f []byte) {
	if x := c.x.Load(); x != nil && x.credit.blocked() {
		x.credit.wait(waitFrame{frame: clone(f)})
		return
	}
	if c.overLimit(len(f)) {
		return
	}
	o := c.grow()
	if o == nil {
		return
	}
	if n := int(c.outSize); n > 0 && len(f) > n && len(f)%n == 0 {
		for i := 0; i < len(f); i += n {
			c.loop.stats.frameOut(frameOp(f[i:]), n)
		}
	} else {
		c.loop.stats.frameOut(frameOp(f), len(f))
	}
	o.b = append(o.b, f...)
}

// putFrame is put for a ready frame.
func (c *conn) putFrame(f []byte) {
	if c.overLimit(len(f)) {
		return
	}
	c.loop.stats.frameOut(frameOp(f), len(f))
	if c.outLen() > 0 {
		c.out.b = append(c.out.b, f...)
		return
	}
	c.flushOut(f)
}

// putFrames is putFrame for k ready frames in one piece, within the
// outbound limit and with no frame waiting for credit (the caller checks):
// one write for all of them. wire, if not nil, is the same frames in the
// layer's form, written when nothing is before them.
func (c *conn) putFrames(b []byte, k int, wire []byte) {
	size := len(b) / k
	for i := range k {
		f := b[i*size : (i+1)*size]
		c.loop.stats.frameOut(frameOp(f), size)
	}
	switch {
	case c.outLen() > 0:
		c.out.b = append(c.out.b, b...)
	case wire != nil:
		c.flushWire(wire)
	default:
		c.flushOut(b)
	}
}

// overLimit applies the slow-consumer policy before n more bytes are
// written past the connection's credit, reporting whether the frame must
// not be written.
func (c *conn) overLimit(n int) bool {
	if c.used()+n <= c.side.cfg.maxOutbound {
		return false
	}
	if c.side.cfg.slowPolicy == SlowDrop {
		c.side.dropped.Add(1)
		return true
	}
	c.closeNow(ErrSlowConsumer)
	return true
}

// flushOut writes b to the socket. A write error closes the connection at
// once (gnet runs OnClose inside Write).
func (c *conn) flushOut(b []byte) {
	c.loop.flushes++
	_, err := c.write(b)
	c.wrote(err)
}

// flushWire is flushOut for bytes already in the layer's form: a run's
// WebSocket messages (fanRun).
func (c *conn) flushWire(b []byte) {
	c.loop.flushes++
	_, err := c.wireWrite(b)
	c.wrote(err)
}

// wrote applies the slow-consumer policy after a write.
func (c *conn) wrote(err error) {
	if err == nil && c.used() > c.side.cfg.maxOutbound && c.side.cfg.slowPolicy == SlowClose {
		c.closeNow(ErrSlowConsumer)
	}
}

// announce sends -2 at the current outbound size, then switches to n
// (docs/PROTOCOL.md §3).
func (c *conn) announce(n int) {
	if x := c.x.Load(); x != nil && x.nextOut == n {
		x.nextOut = 0 // the announcements queued have all been made
	}
	if int(c.outSize) == n || c.closed.Load() {
		return
	}
	o := c.lend()
	if out, err := codec.AppendMessageSize(o.b, int(c.outSize), n); err == nil {
		o.b = out
		c.loop.stats.frameOut(codec.OpMessageSize, int(c.outSize))
	}
	c.setOutSize(n)
}

// sendFailure queues a failure frame; it is built on the loop, at the
// size in force, shortening the message to fit. Safe from any goroutine.
func (c *conn) sendFailure(op codec.Opcode, id *uint64, reason, message string) {
	f := &failFrame{op: op, reason: reason, message: message}
	if id != nil {
		f.id, f.hasID = *id, true
	}
	_ = c.loop.enqueue(task{kind: taskFailure, c: c, fail: f}, nil)
}

// failFrame is a failure frame to build on the loop.
type failFrame struct {
	op              codec.Opcode
	id              uint64
	hasID           bool
	reason, message string
}

// writeFailure builds a failure frame.
func (c *conn) writeFailure(f *failFrame) {
	var id *uint64
	if f.hasID {
		id = &f.id
	}
	size := int(c.outSize)
	if size == 0 {
		size = c.side.cfg.maxSize
	}
	b, err := codec.AppendFailureOp(nil, size, f.op, id, f.reason, f.message)
	if err != nil {
		return
	}
	// The frame's object, without the opcode and the padding.
	if obj, err := codec.Object(b[opLen(f.op):]); err == nil {
		c.loop.stats.failureSent(f.reason)
		c.writeObj(f.op, obj)
	}
}

// setMessageSize queues a size change the application chose: within the
// protocol's limits and the outbound cap, whatever the bounds on what a
// peer may announce. Safe from any goroutine.
func (c *conn) setMessageSize(n int) error {
	cfg := &c.side.cfg
	if n < codec.MinMessageSize || n > codec.MaxMessageSize || n > cfg.maxOutbound {
		return fmt.Errorf("%w: %d is outside [%d, %d]", codec.ErrInvalidSize, n, codec.MinMessageSize,
			min(codec.MaxMessageSize, cfg.maxOutbound))
	}
	if c.closed.Load() {
		return ErrClosed
	}
	// Sends made after this call may already use the larger size: the
	// announcement is queued ahead of them.
	if int32(n) > c.size.Load() {
		c.size.Store(int32(n))
	}
	return c.loop.enqueue(task{kind: taskAnnounce, c: c, size: n}, nil)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
