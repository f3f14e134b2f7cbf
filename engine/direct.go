// This file holds the record of the object an inline callback was handed
// (handed) and what SendRaw does with it: no second validation of the
// object sent back unchanged, and, for the echo on a server, its frame
// built straight into the connection's output instead of through the
// loop's queue.

package engine

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/simplerpc/simplerpc/codec"
)

// handed is the object an inline callback of a loop was handed, while the
// callback runs, so that SendRaw need not validate it again when the
// callback sends it back (the echo), and may build its frame at once.
//
// What SendRaw may skip. Only an object the loop is dispatching inline is
// recorded: a frame's or a call's data, which DecodeFrame has just
// validated and which is borrowed from the loop's inbound buffer until the
// callback returns. A copy is taken before the callback runs (saved), and
// the record is cleared when it returns. SendRaw skips its validation
// only for a slice that starts at the same byte (the memory handed) and
// holds the same bytes as the copy: an object the callback built, in its
// own memory or over the borrowed bytes, is validated. What decides is the
// content: bytes equal to an object the loop has validated form a valid
// object wherever they are. Callbacks on a worker (WithWorkerPool) get a
// copy of their own and no record.
//
// The claim. first is a word with three states: 0 (no record), the
// object's address a (armed: the callback runs), and a|claimed (a sender
// holds the record). The loop arms it (hold: saved written, then first
// stored) and clears it (release: a CompareAndSwap of a to 0, which, if a
// sender holds the claim, waits for it with runtime.Gosched: the claim is
// held for one frame's building, never across a wait). A sender, the
// callback itself on the loop's goroutine or any goroutine the callback
// handed the slice to, claims it with a CompareAndSwap of a to a|claimed
// and gives it back with a store of a. Only one sender holds it at a time,
// and only while the callback runs; one that finds it held, or not armed
// for its slice, takes the ordinary path: validated and queued.
//
// Why the holder may use the loop's own state. The loop's goroutine runs
// nothing of the engine while the callback runs but the callback's own
// calls, and those reach the loop's state (the connection's output, the
// loop's dirty list and buffers, its frame counters) only through the
// claim: every other method a callback may call queues its work or reads
// atomics. So while the claim is held, nobody else touches that state.
// And the holder sees it whole, and the loop sees what the holder wrote:
// everything the loop wrote before hold's store of first happens before a
// claim that reads it (Go's atomics are sequentially consistent, and an
// atomic operation that observes another's effect is synchronized after
// it); everything a holder wrote happens before its store of a, and so
// before the next claim and before release's CompareAndSwap that observes
// it. No goroutine is identified and no stack is read: the word itself
// is the lock, taken only by those who hold the handed slice.
//
// first keeps the address as an integer, only compared, never followed,
// which the garbage collector need not hear of (no write barrier); the
// object is gnet's buffer or a copy the loop holds while the callback
// runs, so no other object has its address then. claimed is bit 63, which
// no Go object's address has (they lie below 2^48 on 64-bit platforms,
// 2^32 on 32-bit ones).
type handed struct {
	first atomic.Uint64
	saved []byte // a copy of the object as it was validated (reused: the largest object dispatched, at most a frame); read under the claim

	// Loop-only, written by hold, read by a holder of the claim.
	armed uint64 // the address hold stored in first
	conn  *conn  // the connection whose callback was handed the object (left set after release: only read under a claim)

	// direct counts the frames built straight into a connection's output
	// (sendHanded), for the tests: written by holders of the claim, read
	// on the loop outside any callback.
	direct uint64
	// checks counts the objects SendRaw validated for this loop's
	// connections, for the tests (RawValidations).
	checks atomic.Uint64
}

// claimed marks first while a sender holds the record (see handed).
const claimed = 1 << 63

// hold records obj, handed to a callback of c about to run, and reports
// whether it did: not for an empty one, nor inside another callback's
// record (a nested callback, which gets no skip). On the loop.
func (h *handed) hold(c *conn, obj []byte) bool {
	if len(obj) == 0 || h.first.Load() != 0 {
		return false
	}
	h.saved = append(h.saved[:0], obj...)
	h.conn = c
	h.armed = firstByte(obj)
	h.first.Store(h.armed)
	return true
}

// release clears the record once the callback has returned, after the
// sender that holds the claim, if any, has given it back. On the loop.
func (h *handed) release() {
	for !h.first.CompareAndSwap(h.armed, 0) {
		runtime.Gosched() // a sender is building one frame (see handed)
	}
}

// firstByte returns the address of b's first byte, for comparison only.
func firstByte(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// claim takes the record for obj and reports whether it did: obj starts
// at the object being handed and no other sender holds it. The caller
// must unclaim it, with the same obj. Safe from any goroutine.
func (h *handed) claim(obj []byte) bool {
	a := firstByte(obj)
	return len(obj) > 0 && h.first.Load() == a && h.first.CompareAndSwap(a, a|claimed)
}

// unclaim gives back the record claim took for obj.
func (h *handed) unclaim(obj []byte) { h.first.Store(firstByte(obj)) }

// same reports whether obj holds the bytes of the object handed, as it was
// validated. With the claim held.
func (h *handed) same(obj []byte) bool { return bytes.Equal(obj, h.saved) }

// validated returns obj as codec.Object does, without a second scan for
// the object c's loop is handing to a callback, unchanged (see handed).
// Safe from any goroutine.
func (c *conn) validated(obj []byte) ([]byte, error) {
	l := c.loop
	if l == nil {
		return codec.Object(obj)
	}
	if h := &l.handed; h.claim(obj) {
		same := h.same(obj)
		h.unclaim(obj)
		if same {
			return obj, nil
		}
	}
	l.handed.checks.Add(1)
	return codec.Object(obj)
}

// sendRaw is SendRaw without the wrapping of its error: the object c's
// loop is handing to a callback, unchanged, is neither validated again
// nor, when sendHanded can build its frame at once, queued. Safe from any
// goroutine.
func (c *conn) sendRaw(op codec.Opcode, obj []byte) error {
	if l := c.loop; l != nil {
		if l.handed.claim(obj) {
			same, sent := c.sendHanded(op, obj)
			if sent {
				return nil
			}
			if same {
				return c.owner().send(c, modeSend, op, obj, 0)
			}
		}
		l.handed.checks.Add(1)
	}
	obj, err := codec.Object(obj)
	if err != nil {
		return err
	}
	return c.owner().send(c, modeSend, op, obj, 0)
}

// sendHanded holds the claim sendRaw took for obj until it returns and
// reports whether obj is the
// object handed, unchanged, and, if so, whether it built its frame into
// c's output, as the loop would once it drained the send (writeSend, put,
// appendObj). If it did not, nothing changed and the caller queues the
// send.
//
// It builds the frame only where the queue would put the same bytes in
// the same place: the loop is in a round (which flushes c), in the
// callback c was handed obj by, c is a server's (a client's send has its
// owner's rules), open, not closing, and nothing is queued before it: no
// task on the loop (a send, a close, a size change, a send to all, for
// any connection), no send of c's charged and not yet written, no frame
// of c waiting for credit, and no handover running (which may carry c's
// sends). The frame must fit the size in force and the outbound credit,
// and the output must not be due a write (flushAt): the slow-consumer
// policy, an unfit frame and the write stay the drain's.
//
// Every return gives the claim back first; no defer does (it cost 40
// instructions a frame): nothing between the claim and its return can
// panic, for no application code runs there, and the engine's does not
// index past a checked bound, convert or allocate more than a buffer.
// A claim never given back would stop the loop in release.
func (c *conn) sendHanded(op codec.Opcode, obj []byte) (same, sent bool) {
	l, s := c.loop, c.side
	h := &l.handed
	if !h.same(obj) {
		h.unclaim(obj)
		return false, false
	}
	if h.conn != c || l.depth == 0 || s.owner == nil || l.pending.Load() || c.queued.Load() != 0 ||
		s.hand.Load() != nil || s.closing.Load() || c.closed.Load() {
		h.unclaim(obj)
		return true, false
	}
	if x := c.x.Load(); x != nil && x.credit.blocked() {
		h.unclaim(obj)
		return true, false
	}
	size, built := int(c.outSize), c.outLen()
	used := int(c.queued.Load()) + c.outbound() + built // c.used(), spelled out: it is not inlined
	if size == 0 || len(obj)+opLen(op) > size || built >= flushAt || used+size > s.cfg.maxOutbound {
		h.unclaim(obj)
		return true, false
	}
	out, err := codec.AppendValidated(c.lend().b, size, op, obj)
	if err != nil { // not reached: the size is checked above
		h.unclaim(obj)
		return true, false
	}
	c.out.b = out
	l.stats.frameOut(op, size)
	h.direct++
	h.unclaim(obj)
	return true, true
}
