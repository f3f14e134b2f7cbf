// This file holds the old server's side of the sends a handover carries:
// the frames sent to a connection after it was moved (a send to all, a
// group send, a send by id, from a handler or any goroutine) go to the
// successor on the handover stream, behind the batch that moved the
// connection (adopt_carry.go writes them there).

package engine

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/simplerpc/simplerpc/codec"
)

// movedConn is a connection the old server moved, kept while its
// handover runs so that sends still reach it.
type movedConn struct {
	c       *conn
	groups  []string // its groups when it moved
	waiting bool     // not authenticated: sends to all skip it
}

// carriedTo is what a moved connection gets of the runs of frames to
// carry (carrySession.runs), and how many connections had been queued
// before them: they go behind those.
type carriedTo struct {
	id    uint64
	runs  []int // indices in carrySession.runs, in the order sent
	after int64
}

// carriedRefCost is what a handover counts against its bound for one
// connection's share of a run of frames it carries: a run is held once
// however many connections get it, and each of them costs an index.
const carriedRefCost = 8

// maxCarryBatch bounds the bytes of frames one batch carries.
const maxCarryBatch = 1 << 20

// maxCarried bounds the bytes of frames a handover owes the successor:
// those of the sends it took and its loops have not run yet, and those
// built and not yet written: a run of frames once however many
// connections get it, and carriedRefCost per connection given it. A
// sender that outpaces the handover would otherwise grow them without
// end, and the handover, which writes them all before it ends, would not
// end. A send that would pass the bound reaches no connection and fails
// with errCarryFull: the sender sees it and may send again, and what was
// carried stays exactly once and in order. The bound grows by
// carriedPerConn with each connection moved: a send to all to 2,000 moved
// connections owes about 16 KB (a 256-byte frame and 2,000 indices), and
// a loop far behind its broadcaster owes that for every send it has not
// run without outpacing anything.
const (
	maxCarried     = 8 << 20
	carriedPerConn = 64 << 10
)

// errCarryFull is what a send that would pass maxCarried returns: it
// went nowhere.
var errCarryFull = fmt.Errorf("the frames a handover carries to its successor: %w", ErrOutboundFull)

// carrySession is the old server's part of a handover that carries sends:
// guarded by the session's mu.
type carrySession struct {
	movedConns  map[uint64]*movedConn
	byLoop      map[*loop][]*movedConn
	runs        [][]byte          // runs of frames to carry, each held once
	carried     []carriedTo       // which runs each connection gets, in the order sent
	lastCarried map[uint64]int    // a connection's last entry in carried
	queuedN     int64             // connections queued so far
	takenN      int64             // connections taken out of the queue to be sent so far
	closing     bool              // the end is near: new sends fail with ErrHandedOver
	closed      bool              // nothing more is carried
	movedOut    map[*loop]int64   // what a send to all carried to the moved connections of a loop owes (addMoved)
	movedSizes  map[*loop][]int32 // the moved connections' frame sizes by loop, each once
	owed        int64             // bytes owed: taken, not run by the loops yet, or built and not written

	// sendMu makes the end wait for the sends under way: a send to all or
	// a carried send holds it (read) from its check to its queueing.
	sendMu sync.RWMutex
}

// addMoved records c, moved with rec, on its loop before it closes. With
// h.mu held.
func (h *handSession) addMoved(c *conn, rec *handedConn) {
	if h.movedConns == nil {
		h.movedConns = make(map[uint64]*movedConn)
		h.byLoop = make(map[*loop][]*movedConn)
	}
	m := &movedConn{c: c, groups: rec.Groups, waiting: rec.Waiting}
	h.movedConns[c.id] = m
	h.byLoop[c.loop] = append(h.byLoop[c.loop], m)
	if h.movedOut == nil {
		h.movedOut = make(map[*loop]int64)
		h.movedSizes = make(map[*loop][]int32)
	}
	// A send to all carries one run per frame size on a loop, and an
	// index per connection.
	h.movedOut[c.loop] += carriedRefCost
	if !slices.Contains(h.movedSizes[c.loop], c.outSize) {
		h.movedSizes[c.loop] = append(h.movedSizes[c.loop], c.outSize)
		h.movedOut[c.loop] += int64(c.outSize)
	}
}

// owe takes n more bytes to carry, or reports false if that would pass
// the bound (maxCarried, carriedPerConn). With h.mu held.
func (h *handSession) owe(n int64) bool {
	if h.owed+n > maxCarried+carriedPerConn*int64(len(h.movedConns)) {
		return false
	}
	h.owed += n
	return true
}

// paid gives back n bytes owed: run by a loop, or written.
func (h *handSession) paid(n int64) {
	if n == 0 {
		return
	}
	h.mu.Lock()
	h.owed = max(h.owed-n, 0)
	h.mu.Unlock()
}

// movedConn returns the connection with net id id if this session moved
// it and still carries its sends. From any goroutine.
func (h *handSession) movedConn(id uint64) *conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.movedConns[id]; m != nil && !h.closing && h.fail == nil {
		return m.c
	}
	return nil
}

// moved reports whether this session moved the connection with net id
// id, carrying its sends or not any more.
func (h *handSession) moved(id uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.movedConns[id] != nil
}

// movedOnce reports whether c is a connection this session moved,
// carrying its sends or not any more.
func (h *handSession) movedOnce(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.movedConns[c.id]
	return m != nil && m.c == c
}

// lookupMoved returns the connection with net id id, which the registry
// does not hold, if a handover moved it and carries its sends; an error
// wrapping ErrHandedOver if it moved and the handover is ending, else
// one wrapping ErrUnknownConn. From any goroutine.
func (s *side) lookupMoved(id uint64) (*conn, error) {
	if h := s.hand.Load(); h != nil {
		if c := h.movedConn(id); c != nil {
			return c, nil
		}
		if h.moved(id) {
			return nil, fmt.Errorf("net id %d: %w", id, ErrHandedOver)
		}
	}
	return nil, fmt.Errorf("%w: net id %d", ErrUnknownConn, id)
}

// sendMoving queues a send by id to c (Server.send): if a handover moved
// c, the send is carried, or fails with ErrHandedOver once the handover
// is ending. While a handover runs, the send holds the session's send hold
// from its check to its queueing, so that the end waits for it: a send
// queued for c before c moved and run after is then carried, even at the
// very end (carrySend). From any goroutine.
func (s *side) sendMoving(c *conn, op codec.Opcode, obj []byte, id uint64) error {
	h := s.hand.Load()
	if h != nil {
		h.sendMu.RLock()
		defer h.sendMu.RUnlock()
	}
	err := c.enqueue(modeSend, op, obj, id)
	if err == nil || !c.closed.Load() {
		return err
	}
	if h == nil {
		if h = s.hand.Load(); h == nil { // it began meanwhile
			return err
		}
		h.sendMu.RLock()
		defer h.sendMu.RUnlock()
	}
	if !h.movedOnce(c) {
		return err
	}
	return h.carryHeld(c, op, obj)
}

// carries reports whether c is a connection this session moved and whose
// sends it still takes: until the end has run what the loops had queued
// (closeCarry), not only until the end began, so that a send queued
// before the end is carried however late its loop runs it.
func (h *handSession) carries(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.movedConns[c.id]
	return m != nil && m.c == c && !h.closed && h.fail == nil
}

// add queues frame f (built at the connection's size, not changed
// after) for the successor. On c's loop, so that the frames of one
// connection keep their order.
func (h *handSession) add(id uint64, f []byte) {
	h.mu.Lock()
	if h.carrying() {
		h.addTo(id, h.addRun(f))
	}
	h.mu.Unlock()
	h.notify()
}

// carrying reports whether frames are still carried. With h.mu held.
func (h *handSession) carrying() bool { return !h.closed && h.fail == nil }

// addRun holds f, frames not changed after, to carry, and returns its
// index. With h.mu held.
func (h *handSession) addRun(f []byte) int {
	h.runs = append(h.runs, f)
	h.owed += int64(len(f)) // paid once written (sendQueued)
	return len(h.runs) - 1
}

// addTo gives the connection with net id id the run at index run. It
// joins the connection's entry when no connection was queued since: a
// send to all then carries one entry per connection, not one per
// connection and send. With h.mu held.
func (h *handSession) addTo(id uint64, run int) {
	if i, ok := h.lastCarried[id]; ok && h.carried[i].after == h.queuedN {
		h.carried[i].runs = append(h.carried[i].runs, run)
	} else {
		if h.lastCarried == nil {
			h.lastCarried = make(map[uint64]int)
		}
		h.lastCarried[id] = len(h.carried)
		h.carried = append(h.carried, carriedTo{id: id, runs: []int{run}, after: h.queuedN})
	}
	h.owed += carriedRefCost
}

// carryHeld carries a send made to a moved connection c, through its
// loop, behind the sends queued for it before, or fails with ErrHandedOver
// once the handover is ending. From any goroutine, with the send hold
// (sendMu) held for reading.
func (h *handSession) carryHeld(c *conn, op codec.Opcode, obj []byte) error {
	n := int64(c.outSize) + carriedRefCost
	h.mu.Lock()
	m := h.movedConns[c.id]
	carrying := m != nil && m.c == c && !h.closing && h.fail == nil
	full := carrying && !h.owe(n)
	h.mu.Unlock()
	switch {
	case !carrying:
		return ErrHandedOver
	case full:
		return fmt.Errorf("net id %d: %w", c.id, errCarryFull)
	}
	obj = clone(obj)
	err := c.loop.enqueue(task{kind: taskFunc, fn: func() {
		h.paid(n)
		h.carryBuilt(c, op, obj)
	}}, nil)
	if err != nil {
		h.paid(n)
	}
	return err
}

// carryBuilt builds obj's frame at c's size and carries it. On c's loop.
func (h *handSession) carryBuilt(c *conn, op codec.Opcode, obj []byte) {
	f, err := codec.AppendValidated(nil, int(c.outSize), op, obj)
	if err != nil {
		c.side.warnDropped.warn(c.side.cfg.logger, "last", c.id, "op", int32(op), "err", err)
		return
	}
	h.add(c.id, f)
}

// carrySend carries a send queued for c before it moved and taken by its
// loop after. On c's loop.
func (l *loop) carrySend(c *conn, op codec.Opcode, obj []byte) {
	if h := l.side.hand.Load(); h != nil && h.carries(c) {
		h.carryBuilt(c, op, obj)
	}
}

// handoverShared takes a send to all or to a group that loop l ran where
// a handover needs it: to the connections of l the old server moved, and,
// on a successor adopting connections, kept for those adopted on l later.
// On l.
func (l *loop) handoverShared(op codec.Opcode, sh *shared) {
	if a := l.side.adopt.Load(); a != nil && sh.seq > 0 {
		a.ran(l, sh.seq)
	}
	if h := l.side.hand.Load(); h != nil && !sh.late {
		if sh.hold != nil && sh.hold.h == h {
			h.paid(sh.hold.owed[l])
		}
		l.carryShared(h, op, sh)
	}
}

// handing reports whether a handover or an adoption runs: a group send
// then goes to every loop, members there or not.
func (s *side) handing() bool { return s.hand.Load() != nil || s.adopt.Load() != nil }

// carryShared carries a send to all or to a group to the connections of
// loop l that moved: its frame once per frame size, and to each
// connection the index of its size's. On l.
func (l *loop) carryShared(h *handSession, op codec.Opcode, sh *shared) {
	h.mu.Lock()
	var runs [4]struct{ size, run int } // the runs added, by frame size
	added := runs[:0]
	moved := h.byLoop[l]
	if !h.carrying() {
		moved = nil
	}
	for _, m := range moved {
		c := m.c
		if c.id == sh.exclude || m.waiting || sh.group != "" && !slices.Contains(m.groups, sh.group) {
			continue
		}
		f, err := sh.frame(op, int(c.outSize))
		if err != nil {
			l.side.unfit.Add(1)
			continue
		}
		run := -1
		for _, a := range added {
			if a.size == len(f) {
				run = a.run
			}
		}
		if run < 0 {
			run = h.addRun(f)
			added = append(added, struct{ size, run int }{len(f), run})
		}
		h.addTo(c.id, run)
	}
	h.mu.Unlock()
	h.notify()
}

// carryHold is what a send to all or to a group took from a handover's
// bound (maxCarried): the bytes it owes on each loop, given back as the
// loop runs it.
type carryHold struct {
	h    *handSession
	owed map[*loop]int64
}

// sharedOpen returns, while a handover runs, the release of the hold a
// send to all keeps until it is queued, what it took from the handover's
// bound (nil if nothing), and whether the handover is ending: the
// connections it moved then get no more sends from here. It fails with
// errCarryFull, the hold released, if the send would pass the bound: it
// must then go nowhere. From any goroutine.
func (s *side) sharedOpen() (release func(), hold *carryHold, ended bool, err error) {
	h := s.hand.Load()
	if h == nil {
		return func() {}, nil, false, nil
	}
	h.sendMu.RLock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing || h.fail != nil {
		return h.sendMu.RUnlock, nil, h.closing, nil
	}
	var n int64
	for _, b := range h.movedOut {
		n += b
	}
	if n == 0 {
		return h.sendMu.RUnlock, nil, false, nil
	}
	if !h.owe(n) {
		h.sendMu.RUnlock()
		return nil, nil, false, errCarryFull
	}
	return h.sendMu.RUnlock, &carryHold{h: h, owed: maps.Clone(h.movedOut)}, false, nil
}

// errMovedMissed is what a send to all or to a group made once a handover
// ended returns: the connections left here got it, those moved did not.
var errMovedMissed = fmt.Errorf("the connections handed over to the successor did not get it: %w", ErrHandedOver)

// closeCarry ends the carrying: sends under way are queued first, and the
// loops have taken what was queued before; later sends to all fail with
// ErrHandedOver.
func (h *handSession) closeCarry() {
	h.sendMu.Lock()
	h.mu.Lock()
	h.closing = true
	h.mu.Unlock()
	h.sendMu.Unlock()
	_ = h.s.adoptBarrier(context.Background()) // what was queued on the loops before is carried now
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
}
