// This file holds the calls' outbound budget: how a connection bounds the
// requests it has written and the kernel has not taken yet, without ever
// applying the slow-consumer policy to its own calls.

package engine

import (
	"sync/atomic"

	"github.com/simplerpc/simplerpc/codec"
)

// callBudget bounds a connection's calls' requests by the outbound cap,
// apart from its sends. A request is charged at the frame size when it is
// queued and released once the loop sees its bytes leave gnet's buffer for
// the kernel. A request that does not fit waits in the connection's
// waiting list, on the loop, in order, as a Call's goroutine waits for its
// reply: nothing blocks before the loop, and a send made meanwhile is not
// held up by it, as it would not be by a caller still blocked in a write.
// A CallAsync that does not fit fails. The frames a client held until it
// was ready wait in the same list, paced in the same way; those keep their
// order with every frame sent after them, which queues behind them.
//
// gnet has no writability callback, so the loop looks again after each
// write to the connection, on each read from it, and, while requests'
// bytes remain and someone needs the room, on one timer per loop
// (loop.recheckLater).
type callBudget struct {
	charged atomic.Int64 // bytes of requests queued, waiting or not yet seen leaving
	out     int64        // loop-only: bytes of paced frames written, not yet seen leaving
	waiting []waitFrame  // loop-only: frames waiting for room, in order
	ordered int          // loop-only: how many of them later frames must not overtake
	recheck bool         // loop-only: on the loop's recheck list
}

// waitFrame is a frame that waits on the loop for the calls' budget, or
// behind such a frame.
type waitFrame struct {
	op     codec.Opcode
	obj    []byte // owned; nil for a ready frame
	frame  []byte // a ready frame (a broadcast's), or nil
	charge int    // paced: bytes charged to the budget; else to the send budget
	call   uint64 // the request's call id, or 0
	paced  bool   // a call's request or a held frame: written as the budget allows
	owed   bool   // paced, and charged only when written (a held frame)
}

// charge charges n bytes of a request. strict refuses a charge past limit
// (CallAsync); otherwise the loop makes the request wait.
func (b *callBudget) charge(n int64, limit int, strict bool) bool {
	if b.charged.Add(n) > int64(limit) && strict {
		b.charged.Add(-n)
		return false
	}
	return true
}

func (b *callBudget) uncharge(n int64) { b.charged.Add(-n) }

// blocked reports whether frames wait that a frame written now must not
// overtake: it goes behind them. Loop-only.
func (b *callBudget) blocked() bool { return b.ordered > 0 }

// wait puts w at the end of the waiting list. Loop-only.
func (b *callBudget) wait(w waitFrame) {
	if w.orderedFrame() {
		b.ordered++
	}
	b.waiting = append(b.waiting, w)
}

// orderedFrame reports whether later frames must stay behind w: all but a
// call's request waiting for room.
func (w *waitFrame) orderedFrame() bool { return !w.paced || w.owed }

// fits reports whether n more bytes of paced frames may be written now:
// always one when none is out, so that progress never stops.
func (b *callBudget) fits(n, limit int) bool { return b.out == 0 || b.out+int64(n) <= int64(limit) }

// writeCall writes a call's request, or makes it wait for room. On the
// loop.
func (c *conn) writeCall(t *task, obj []byte) {
	b := &c.extra().budget
	if len(b.waiting) > 0 || !b.fits(t.size, c.side.cfg.maxOutbound) {
		b.wait(waitFrame{op: t.op, obj: clone(obj), charge: t.size, call: t.id, paced: true})
		c.release()
		return
	}
	c.writePaced(t.op, obj, t.size)
}

// writePaced writes a frame charged to the calls' budget: no slow-consumer
// check, the budget bounds it.
func (c *conn) writePaced(op codec.Opcode, obj []byte, charge int) {
	b := &c.extra().budget
	if c.outSize == 0 || !c.appendObj(op, obj) {
		b.uncharge(int64(charge)) // not written: the charge goes back at once
		return
	}
	b.out += int64(charge)
}

// hold makes frames held by a client before the connection was ready
// wait for the calls' budget, as requests do: they are the client's own
// burst, and a thousand small frames held are a thousand full-size frames
// once written. On the loop.
func (c *conn) hold(frames []heldFrame) {
	b := &c.extra().budget
	for _, h := range frames {
		b.wait(waitFrame{op: h.op, obj: h.obj, charge: c.outSize, call: h.call, paced: true, owed: true})
	}
	c.release()
}

// release gives the budget back for the paced bytes that have left for the
// kernel, counting every byte still in gnet's buffer as theirs, then writes
// the waiting frames that now fit. It runs after each write to the
// connection, on each read from it and on the loop's recheck timer. On the
// loop.
func (c *conn) release() {
	x := c.x.Load()
	if x == nil || c.closed.Load() {
		return
	}
	b := &x.budget
	if b.out > 0 {
		keep := min(b.out, int64(c.outbound()+len(c.out)))
		if gone := b.out - keep; gone > 0 {
			b.out = keep
			b.charged.Add(-gone)
		}
	}
	limit := c.side.cfg.maxOutbound
	for len(b.waiting) > 0 && !c.closed.Load() {
		w := b.waiting[0]
		gone := w.paced && w.call != 0 && !x.calls.has(w.call) // its call ended while it waited
		if w.paced && !gone && !b.fits(w.charge, limit) {
			break
		}
		if w.orderedFrame() {
			b.ordered--
		}
		b.waiting[0] = waitFrame{}
		b.waiting = b.waiting[1:]
		switch {
		case gone:
			if !w.owed {
				b.uncharge(int64(w.charge))
			}
		case w.paced:
			if w.owed {
				b.charged.Add(int64(w.charge))
			}
			c.writePaced(w.op, w.obj, w.charge)
		case w.frame != nil:
			c.putFrame(w.frame)
		default:
			c.queued.Add(-int64(w.charge))
			c.put(w.op, w.obj)
		}
	}
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	if b.out > 0 && !b.recheck && !c.closed.Load() &&
		(len(b.waiting) > 0 || b.charged.Load()+int64(c.outSize) > int64(limit)) {
		b.recheck = true
		c.loop.recheckLater(c)
	}
}

// unsent returns the sends that were still waiting when the connection
// closed, for a reconnecting client to hold again. On the loop.
func (c *conn) unsent() []heldFrame {
	x := c.x.Load()
	if x == nil {
		return nil
	}
	var out []heldFrame
	for _, w := range x.budget.waiting {
		if w.call == 0 && w.frame == nil {
			out = append(out, heldFrame{op: w.op, obj: w.obj})
		}
	}
	x.budget.waiting, x.budget.ordered = nil, 0
	return out
}

// heldFrame is a frame a client holds until its connection is ready.
type heldFrame struct {
	op   codec.Opcode
	obj  []byte
	call uint64 // the request's call id, or 0
	conn *conn  // the connection whose call it is, or nil
}
