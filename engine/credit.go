// This file holds a connection's outbound credit, the one flow-control
// mechanism of the engine, and the frames that wait for it.
//
// A connection has one outbound credit, WithMaxOutbound bytes, and one
// count against it, used: the sends queued to the loop and not yet
// written (c.queued, charged at the frame size by whoever queues them,
// from any goroutine) plus the bytes written and not yet taken by the
// kernel (built this round, or held by gnet or the layer: backlog). What
// cannot wait is refused past the whole credit: a send fails with
// ErrOutboundFull and the slow-consumer policy applies, and so does a
// reply, a broadcast or a layer's own frame. What can wait waits for the
// count to come down: reading the peer's frames stops while used is over
// half the credit and starts again under a quarter, so that a peer that
// does not read its replies cannot make us hold more of them; a Call's
// request and a frame a client held until ready wait, in order, in the
// connection's waiting list on the loop, and are written only while they
// keep used within a quarter (or when used is 0, so that progress never
// stops; the sends queued behind them, which cannot go first, aside), so
// they never make the policy apply and never keep reading paused. Frames waiting are counted apart (credit.waiting), not against
// the credit they wait for; a CallAsync, which must not wait, fails when
// they would pass the credit. gnet tells nobody when its output drains
// (GNET.md §8), so while a connection has something waiting on credit, a
// paused read or a waiting frame, the loop looks again every recheckEvery,
// on one timer for all such connections (loop.recheckLater), as well as
// after each write to the connection and on each read from it.

package engine

import (
	"sync/atomic"

	"github.com/simplerpc/simplerpc/codec"
)

// credit is a connection's state for the frames that wait for outbound
// credit (see the file's comment). It lives in the lazily allocated part
// of the connection: one that never calls or holds costs nothing for it.
type credit struct {
	waiting atomic.Int64 // bytes of calls' requests and held frames not yet written: queued to the loop or in list
	list    []waitFrame  // loop-only: frames waiting for credit, and those that must stay behind them, in order
	ordered int          // loop-only: how many of them later frames must not overtake
	behind  int          // loop-only: bytes of the sends in list, still charged to c.queued
	recheck bool         // loop-only: on the loop's recheck list
}

// waitFrame is a frame that waits on the loop for credit, or behind such a
// frame.
type waitFrame struct {
	op     codec.Opcode
	obj    []byte // owned; nil for a ready frame
	frame  []byte // a ready frame (a broadcast's), or nil
	charge int    // bytes charged: to credit.waiting if waits, else to c.queued
	call   uint64 // the request's call id, or 0
	waits  bool   // a call's request or a held frame: written as the credit allows
	held   bool   // a frame a client held: later frames stay behind it
}

// charge counts n bytes of a call's request on its way to the loop.
// strict refuses a charge past limit (CallAsync); otherwise the loop makes
// the request wait.
func (cr *credit) charge(n int64, limit int, strict bool) bool {
	if cr.waiting.Add(n) > int64(limit) && strict {
		cr.waiting.Add(-n)
		return false
	}
	return true
}

func (cr *credit) uncharge(n int64) { cr.waiting.Add(-n) }

// blocked reports whether frames wait that a frame written now must not
// overtake: it goes behind them. Loop-only.
func (cr *credit) blocked() bool { return cr.ordered > 0 }

// wait puts w at the end of the waiting list. Loop-only.
func (cr *credit) wait(w waitFrame) {
	if w.orderedFrame() {
		cr.ordered++
	}
	if !w.waits {
		cr.behind += w.charge
	}
	cr.list = append(cr.list, w)
}

// orderedFrame reports whether later frames must stay behind w: all but a
// call's request waiting for credit.
func (w *waitFrame) orderedFrame() bool { return !w.waits || w.held }

// used is the count against the connection's credit: sends queued to the
// loop plus what is written and not yet taken by the kernel. On the loop.
func (c *conn) used() int { return int(c.queued.Load()) + c.backlog() }

// backlog returns the bytes written to the connection and not yet taken by
// the kernel: built this round, or held by gnet or the layer. On the loop.
func (c *conn) backlog() int { return c.outbound() + c.outLen() }

// fits reports whether a frame that waits for credit may be written now:
// within a quarter of the credit, or when nothing at all is used. The
// sends queued behind the waiting frames do not count: they cannot go
// before them. On the loop.
func (c *conn) fits(cr *credit, n int) bool {
	u := c.used() - cr.behind
	return u == 0 || u+n <= c.side.cfg.maxOutbound/4
}

// writeCall writes a call's request, or makes it wait for credit. On the
// loop.
func (c *conn) writeCall(t *task, obj []byte) {
	cr := &c.extra().credit
	if len(cr.list) > 0 || !c.fits(cr, t.size) {
		cr.wait(waitFrame{op: t.op, obj: clone(obj), charge: t.size, call: t.id, waits: true})
		c.release()
		return
	}
	c.writeWaited(t.op, obj, t.size)
}

// writeWaited writes a frame that waited for credit: no slow-consumer
// check, fits made room for it. Its bytes leave the waiting count and join
// the backlog.
func (c *conn) writeWaited(op codec.Opcode, obj []byte, charge int) {
	c.extra().credit.uncharge(int64(charge))
	if c.outSize != 0 {
		c.appendObj(op, obj)
	}
}

// hold makes frames held by a client before the connection was ready
// wait for credit, as requests do: they are the client's own burst, and a
// thousand small frames held are a thousand full-size frames once written.
// On the loop.
func (c *conn) hold(frames []heldFrame) {
	cr := &c.extra().credit
	for _, h := range frames {
		cr.waiting.Add(int64(c.outSize))
		cr.wait(waitFrame{op: h.op, obj: h.obj, charge: int(c.outSize), call: h.call, waits: true, held: true})
	}
	c.release()
}

// release writes the waiting frames that the credit now allows, in order,
// and keeps the connection on the loop's recheck list while some still
// wait. It runs after each write to the connection, on each read from it
// and on the loop's recheck timer. On the loop.
func (c *conn) release() {
	x := c.x.Load()
	if x == nil || len(x.credit.list) == 0 || c.closed.Load() {
		return
	}
	cr := &x.credit
	for len(cr.list) > 0 && !c.closed.Load() {
		w := cr.list[0]
		gone := w.waits && w.call != 0 && !x.calls.has(w.call) // its call ended while it waited
		if w.waits && !gone && !c.fits(cr, w.charge) {
			break
		}
		if w.orderedFrame() {
			cr.ordered--
		}
		cr.list[0] = waitFrame{}
		cr.list = cr.list[1:]
		switch {
		case gone:
			cr.uncharge(int64(w.charge))
		case w.waits:
			c.writeWaited(w.op, w.obj, w.charge)
		case w.frame != nil:
			c.putFrame(w.frame)
		default:
			cr.behind -= w.charge
			c.queued.Add(-int64(w.charge))
			c.put(w.op, w.obj)
		}
	}
	if len(cr.list) == 0 {
		cr.list = nil
		return
	}
	if !c.closed.Load() {
		c.waitCredit()
	}
}

// waitCredit puts c on its loop's recheck list, once: something of it
// waits on credit. On the loop.
func (c *conn) waitCredit() {
	if cr := &c.extra().credit; !cr.recheck {
		cr.recheck = true
		c.loop.recheckLater(c)
	}
}

// recheck looks again at a connection on the recheck list: writes the
// frames that now fit and reads again if reading was paused. On the loop,
// from the recheck timer.
func (c *conn) recheck() {
	if x := c.x.Load(); x != nil {
		x.credit.recheck = false
	}
	c.release()
	if c.paused {
		c.resume()
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
	for _, w := range x.credit.list {
		if w.call == 0 && w.frame == nil {
			out = append(out, heldFrame{op: w.op, obj: w.obj})
		}
	}
	x.credit.list, x.credit.ordered, x.credit.behind = nil, 0, 0
	x.credit.waiting.Store(0)
	return out
}

// heldFrame is a frame a client holds until its connection is ready.
type heldFrame struct {
	op   codec.Opcode
	obj  []byte
	call uint64 // the request's call id, or 0
	conn *conn  // the connection whose call it is, or nil
}
