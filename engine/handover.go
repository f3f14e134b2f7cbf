// This file holds the handing over of a server's live connections to a
// successor (a new binary) over a Unix socket: each connection's hand-off
// on its loop, and the session that sends them and waits for the
// successor's acknowledgements. The successor's side is adopt.go; the wire,
// handover_wire.go; the acceptors' pause, handover_accept.go.

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/internal/handoverwire"
)

// ErrHandedOver is why a connection left a server that handed it over to
// its successor ([Server.HandOver]): calls the server made on it that had
// no reply fail with an error wrapping it (and [ErrClosed]).
var ErrHandedOver = errors.New("engine: connection handed over to the successor")

// handoverWait bounds how long one connection's hand-off waits for the
// calls in flight on it and for its output to drain; past it, the
// connection is told to go away (-8) instead.
const handoverWait = 2 * time.Second

// handoverRetry is how often a hand-off that waits looks again.
const handoverRetry = time.Millisecond

// handoverWindow is how many connections may be between their hand-off's
// start and being live in the successor, in all: a connection stops being
// read only shortly before the successor can take it, so that none waits
// for all the others to be snapshotted, sent and enrolled.
const handoverWindow = 256

// HandoverReport says what a handover did.
type HandoverReport struct {
	// HandedOver is the number of connections the successor took.
	HandedOver int
	// GoneAway is the number of connections that could not be handed over
	// (TLS, wss:// and WebSocketHandler's, calls that did not finish in
	// time, a save hook that failed) and were told to go away (-8)
	// instead; they stay on this server until they leave or it shuts down.
	GoneAway int
}

// HandOver hands the server's live plain-TCP, Unix and ws:// connections
// to a successor listening for them on uc (its [Server.Adopt]), so that their
// peers see nothing: no close, no reconnect, no lost frame. The server
// first stops accepting (a successor holding the same listening sockets
// accepts instead). Then each connection, on its loop, waits (at most 2 s)
// for the calls it has in flight in both directions and for its output to
// drain, stops being read, and leaves with its net id, its message sizes,
// its groups, its identity ([WithAuth]), the bytes read but not handled
// yet, and the application's state ([WithHandover]); a ws:// connection
// also with its WebSocket's state (the path it was upgraded at, text or
// binary, the frame sizes in force, a fragmented message begun and a
// frame not all read), so that its WebSocket goes on in the successor
// without a close or a new upgrade. Its socket goes to
// the successor (SCM_RIGHTS) and is closed here without a FIN. Calls the
// server made on it later fail with [ErrHandedOver]. No disconnect
// callback runs for it here, and no connect callback in the successor
// (the restore hook does). Connections that cannot leave so (TLS and
// wss://, whose live session crypto/tls cannot export; those of
// [Server.WebSocketHandler]; calls still running after the wait) are
// told to go away (-8) instead, as [Server.GoAway] does.
//
// It returns once the successor has acknowledged every connection; the
// server then accepts nothing more, and [Server.GoAway] or
// [Server.Shutdown] ends the connections left. If the successor fails
// (uc closes or errs) or ctx ends, the connections it has not
// acknowledged come back to this server, which accepts again, and the
// error says why; those it had acknowledged are the successor's, and their
// peers see a close if it dies.
//
// Sends go on meanwhile, from handlers and from any goroutine, and reach
// every connection exactly once, moved or not: a send to all, to a group
// or to a net id made on this server after a connection moved is carried
// to the successor on uc, behind the batch that moved it, and written
// there before anything the successor sends it later (up to 8 MiB, and
// 64 KiB more per connection moved, not yet written: past it, a send goes nowhere and fails with an error
// wrapping [ErrOutboundFull], so a fast sender cannot keep the handover
// from ending). Once every connection is resolved, the handover ends:
// sends under way are carried, and later ones no longer reach the moved
// connections (the process is about to exit): [Server.SendAll] and
// [Group.Send] still reach those left here and return an error wrapping
// [ErrHandedOver], and a send to a moved net id fails with it. It is safe
// for concurrent use, but a server hands over once.
func (s *Server) HandOver(ctx context.Context, uc *net.UnixConn) (HandoverReport, error) {
	if s.state.Load() != stateRunning {
		return HandoverReport{}, fmt.Errorf("engine: hand over: %w", ErrServerClosed)
	}
	if !s.hand.begun.CompareAndSwap(false, true) {
		return HandoverReport{}, errors.New("engine: hand over: already handed over")
	}
	if err := waitHello(ctx, uc); err != nil {
		s.hand.begun.Store(false)
		return HandoverReport{}, fmt.Errorf("engine: hand over: the successor: %w", err)
	}
	if err := s.hand.pause(ctx, s); err != nil {
		s.hand.resume()
		s.hand.begun.Store(false)
		return HandoverReport{}, fmt.Errorf("engine: hand over: %w", err)
	}
	h := &handSession{s: s, uc: uc, wake: make(chan struct{}, 1), acked: make(chan error, 1), readDone: make(chan struct{}),
		slots: handoverWindow}
	s.side.hand.Store(h)
	h.start()
	rep, err := h.run(ctx)
	if err != nil {
		s.side.hand.Store(nil) // no more carrying: the connections come back
		h.recover(recoverWithin)
		s.hand.resume()
		s.hand.begun.Store(false)
		return rep, fmt.Errorf("engine: hand over: %w", err)
	}
	s.hand.finish()
	return rep, nil
}

// waitHello waits for the successor's first message, which says it is
// reading: nothing is handed off before, so that no connection waits for
// the successor's start.
func waitHello(ctx context.Context, uc *net.UnixConn) error {
	stop := context.AfterFunc(ctx, func() { _ = uc.SetReadDeadline(time.Unix(1, 0)) })
	n, err := readAck(uc)
	if !stop() {
		err = context.Cause(ctx)
	}
	_ = uc.SetReadDeadline(time.Time{})
	if err == nil {
		err = checkHello(n)
	}
	return err
}

// handState is a connection's part in a handover: on the old server, its
// hand-off under way; on the successor, the state it is adopted with.
type handState struct {
	deadline time.Time
	stopped  bool // no frame is read from it any more (holdHandover)
	adopted  *handedConn
}

// handSession is one handover of the old server.
type handSession struct {
	s    *Server
	uc   *net.UnixConn
	wake chan struct{} // a snapshot was queued, or every connection is resolved

	mu      sync.Mutex // guards queue, sent, fail, rest, slots
	queue   []handedConn
	rest    []*conn        // connections not yet set on their way
	slots   int            // how many more may be set on their way
	sent    [][]handedConn // batches sent, not acknowledged yet; nil for the end
	fail    error          // set once: no more hand-offs
	pending atomic.Int64   // connections not resolved yet
	ended   bool           // the end batch went out
	carrySession

	acked    chan error    // the reader's outcome: nil once the end was acknowledged
	readDone chan struct{} // closed when the reader returns
	handed   atomic.Int64
	gone     atomic.Int64
}

// start sets the connections of every loop on their way, handoverWindow
// at a time.
func (h *handSession) start() {
	loops := h.s.side.eachLoop()
	lists := make(chan []*conn, len(loops))
	for _, l := range loops {
		if err := l.enqueue(task{kind: taskFunc, fn: func() { lists <- slices.Clone(l.conns) }}, nil); err != nil {
			lists <- nil
		}
	}
	var all []*conn
	for range loops {
		all = append(all, <-lists...)
	}
	h.pending.Add(int64(len(all)))
	h.mu.Lock()
	h.rest = all
	h.mu.Unlock()
	h.fill()
	h.notify()
}

// fill sets connections on their way while there are slots. From any
// goroutine.
func (h *handSession) fill() {
	h.mu.Lock()
	n := min(h.slots, len(h.rest))
	next := h.rest[:n:n]
	h.rest, h.slots = h.rest[n:], h.slots-n
	h.mu.Unlock()
	for _, c := range next {
		h.queueOff(c)
	}
}

// free gives back n slots: connections kept here, closed, or live in the
// successor.
func (h *handSession) free(n int) {
	h.mu.Lock()
	h.slots += n
	h.mu.Unlock()
	h.fill()
}

// notify wakes the writer.
func (h *handSession) notify() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// failed returns why the session failed, or nil.
func (h *handSession) failed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fail
}

func (h *handSession) setFail(err error) {
	h.mu.Lock()
	if h.fail == nil {
		h.fail = err
	}
	h.mu.Unlock()
	h.notify()
}

// resolved counts c done with here: handed (its slot comes back when the
// successor says it is live), or kept, or closed.
func (h *handSession) resolved(c *conn, handed bool) {
	if h.pending.Add(-1) == 0 {
		h.notify()
	}
	if !handed {
		h.free(1)
	}
}

// queueOff queues c's hand-off on its loop; if the loop has stopped, c is
// closed and done with.
func (h *handSession) queueOff(c *conn) {
	if c.loop.enqueue(task{kind: taskFunc, fn: func() { h.handOff(c) }}, nil) != nil {
		h.resolved(c, false)
	}
}

// later looks at c again after a while, or behind what is queued now.
func (h *handSession) later(c *conn, now bool) {
	if now {
		h.queueOff(c)
		return
	}
	time.AfterFunc(handoverRetry, func() { h.queueOff(c) })
}

// handOff moves c along its hand-off, on its loop: wait for its calls,
// stop reading it, wait for its output, then snapshot it and let it go.
func (h *handSession) handOff(c *conn) {
	if c.closed.Load() {
		h.resolved(c, false)
		return
	}
	x := c.extra()
	st := x.hand
	if st == nil {
		st = &handState{deadline: time.Now().Add(handoverWait)}
		x.hand = st
	}
	if h.failed() != nil {
		h.keep(c, st, false)
		return
	}
	if !c.movable() {
		h.keep(c, st, true) // TLS: its state cannot leave the process
		return
	}
	late := time.Now().After(st.deadline)
	if !st.stopped {
		busy := c.authRunning() || c.jobsBusy()
		if (busy || c.pendingCalls() > 0) && !late {
			h.later(c, false)
			return
		}
		if busy {
			h.keep(c, st, true) // calls it made still run here
			return
		}
		// Stop reading: what arrives waits in gnet's buffer for the
		// successor.
		st.stopped = true
		c.holdReads(holdHandover)
		h.later(c, true) // behind what its frames queued
		return
	}
	c.loop.flush()
	if c.closed.Load() {
		h.resolved(c, false)
		return
	}
	if c.queued.Load() > 0 || c.jobsBusy() || len(x.credit.list) > 0 || c.outbound() > 0 {
		if late {
			h.keep(c, st, true)
			return
		}
		h.later(c, c.queued.Load() > 0)
		return
	}
	rec, err := h.snapshot(c)
	if err != nil {
		c.side.cfg.logger.Warn("simplerpc: handover: connection kept", "conn", c.id, "err", err)
		h.keep(c, st, true)
		return
	}
	x.closeReason = ErrHandedOver
	c.reported = false // no disconnect callback: it is not disconnected
	h.mu.Lock()
	h.addMoved(c, &rec) // sends to it are carried from now on
	h.mu.Unlock()
	_ = c.loop.el.Close(c.gc)
	h.mu.Lock()
	h.queue = append(h.queue, rec)
	h.queuedN++
	h.mu.Unlock()
	h.resolved(c, true)
	h.notify()
}

// keep leaves c on this server, reading again, and tells it to go away
// (-8) when goAway is set. On its loop.
func (h *handSession) keep(c *conn, st *handState, goAway bool) {
	c.extra().hand = nil
	if goAway {
		h.gone.Add(1)
		if obj, err := codec.Marshal(map[string]string{"reason": "upgrade"}); err == nil {
			_ = c.enqueue(modeSend, codec.OpGoAway, obj, 0)
		}
	}
	h.resolved(c, false)
	if st.stopped {
		c.releaseReads(holdHandover) // what arrived meanwhile
	}
}

// snapshot takes c's state and a copy of its socket. On its loop.
func (h *handSession) snapshot(c *conn) (handedConn, error) {
	s := h.s
	x := c.extra()
	rec := handedConn{ID: c.id, In: int(c.inSize), Out: int(c.outSize), Waiting: !c.authenticated(), Groups: s.Groups(c.id)}
	x.valMu.Lock()
	rec.Identity = x.identity
	x.valMu.Unlock()
	rec.Calls = x.calls.sequence()
	if w, ok := c.wsLayer(); ok {
		in, _ := c.gc.Peek(-1)
		ws, ok := w.export(in)
		if !ok {
			return rec, errors.New("the WebSocket is closing or not past its upgrade")
		}
		rec.WS = ws
		rec.Unread = append(slices.Clone(w.stash), c.tlPlain()...)
	} else {
		rec.Unread = c.unread()
	}
	if save := s.side.cfg.handSave; save != nil {
		var err error
		c.safely("handover save hook", func() { rec.App, err = save(c) })
		if err != nil {
			return rec, fmt.Errorf("save hook: %w", err)
		}
	}
	fd, err := dupFD(c.gc.Fd())
	if err != nil {
		return rec, fmt.Errorf("dup: %w", err)
	}
	rec.FD = fd
	return rec, nil
}

// unread returns a copy of what was read from c's socket and not handled:
// gnet's buffer, behind what an adoption's replay still holds.
func (c *conn) unread() []byte {
	var out []byte
	if tl := c.layered(); tl != nil {
		if r, ok := tl.l.(*replayLayer); ok {
			out = append(out, r.stash...)
		}
		b, _ := tl.Peek(-1)
		out = append(out, b...)
	}
	b, _ := c.gc.Peek(-1)
	return append(out, b...)
}

// run sends the snapshots as they come, then the end, and waits for the
// successor's acknowledgements; ctx's end cuts a blocked write short.
func (h *handSession) run(ctx context.Context) (HandoverReport, error) {
	go h.readAcks()
	stop := context.AfterFunc(ctx, func() { h.setFail(context.Cause(ctx)); _ = h.uc.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		<-h.wake
		if err := h.failed(); err != nil {
			return h.report(), err
		}
		if err := h.sendQueued(); err != nil {
			h.setFail(err)
			return h.report(), h.failed() // ctx's, if its end cut the write
		}
		if h.pending.Load() == 0 {
			// Every connection is resolved: what is queued now is all, and
			// the sends under way are carried.
			h.closeCarry()
			if err := h.sendQueued(); err != nil {
				h.setFail(err)
				return h.report(), h.failed()
			}
			break
		}
	}
	h.mu.Lock()
	h.sent = append(h.sent, nil)
	h.ended = true
	h.mu.Unlock()
	end := &handBatch{Next: h.s.nextID.Load(), End: true}
	if js, err := codec.Marshal(h.s.counters()); err == nil {
		end.Stats = js
	}
	if err := writeBatch(h.uc, end); err != nil {
		h.setFail(err)
		return h.report(), h.failed()
	}
	select {
	case err := <-h.acked:
		if err != nil {
			h.setFail(err)
			return h.report(), h.failed() // ctx's, if its end cut the write
		}
	case <-ctx.Done():
		h.setFail(context.Cause(ctx))
		return h.report(), context.Cause(ctx)
	}
	return h.report(), nil
}

func (h *handSession) report() HandoverReport {
	return HandoverReport{HandedOver: int(h.handed.Load()), GoneAway: int(h.gone.Load())}
}

// sendQueued sends what is queued, in batches of maxHandBatch, and the
// frames carried meanwhile, each behind the batch that moved its conn.
func (h *handSession) sendQueued() error {
	h.mu.Lock()
	if h.fail != nil {
		h.mu.Unlock()
		return nil
	}
	// Connections and frames go in the order they were queued: what the
	// successor does for a connection it adopts later follows a frame. A
	// batch of frames holds each run it gives a connection once.
	var (
		out   []*handBatch
		owed  []int64 // what each batch of out pays back once written
		fb    *handBatch
		local map[int]int // a run's index in h.runs → in fb.Frames
		size  int
	)
	flushFrames := func() {
		if fb != nil {
			h.sent = append(h.sent, []handedConn{}) // acknowledged as a batch of no connection
			out = append(out, fb)
			fb, local, size = nil, nil, 0
		}
	}
	conns := func(upto int64) {
		flushFrames()
		for h.takenN < upto {
			n := int(min(int64(min(len(h.queue), maxHandBatch)), upto-h.takenN))
			batch := slices.Clone(h.queue[:n])
			h.queue = h.queue[n:]
			h.takenN += int64(n)
			h.sent = append(h.sent, batch)
			out, owed = append(out, &handBatch{Conns: batch}), append(owed, 0)
		}
	}
	paid := make([]bool, len(h.runs)) // a run's bytes are paid back with the first batch that holds it
	for _, ct := range h.carried {
		if ct.after > h.takenN {
			conns(ct.after)
		}
		if size > maxCarryBatch {
			flushFrames()
		}
		if fb == nil {
			fb, local = &handBatch{}, make(map[int]int)
			owed = append(owed, 0) // fb's, out's next
		}
		to := handoverwire.To{ID: ct.id, Frames: make([]int, len(ct.runs))}
		for k, run := range ct.runs {
			i, ok := local[run]
			if !ok {
				i = len(fb.Frames)
				local[run] = i
				fb.Frames = append(fb.Frames, h.runs[run])
				size += len(h.runs[run])
				if !paid[run] {
					paid[run] = true
					owed[len(owed)-1] += int64(len(h.runs[run]))
				}
			}
			to.Frames[k] = i
		}
		owed[len(owed)-1] += carriedRefCost * int64(len(ct.runs))
		size += carriedRefCost * len(ct.runs)
		fb.To = append(fb.To, to)
	}
	flushFrames()
	conns(h.queuedN)
	h.runs, h.carried = nil, nil
	clear(h.lastCarried)
	h.mu.Unlock()
	for i, b := range out {
		b.Next = h.s.nextID.Load()
		if err := writeBatch(h.uc, b); err != nil {
			return err
		}
		h.paid(owed[i]) // paid back (maxCarried)
	}
	return nil
}

// readAcks takes the successor's acknowledgements: the sockets of an
// acknowledged batch are the successor's, and this side's copies close.
func (h *handSession) readAcks() {
	defer close(h.readDone)
	for {
		n, err := readAck(h.uc)
		if err == nil && n&liveAck != 0 && n != helloAck {
			h.free(int(n &^ liveAck))
			continue
		}
		if err == nil {
			h.mu.Lock()
			if len(h.sent) == 0 || uint32(len(h.sent[0])) != n {
				err = fmt.Errorf("%w: an acknowledgement of %d connections", errHandWire, n)
			}
			h.mu.Unlock()
		}
		if err != nil {
			err = fmt.Errorf("successor: %w", err)
			h.acked <- err
			h.setFail(err)
			return
		}
		h.mu.Lock()
		batch := h.sent[0]
		h.sent = h.sent[1:]
		end := batch == nil && h.ended
		h.mu.Unlock()
		for _, rc := range batch {
			closeFDs([]int{rc.FD})
		}
		h.handed.Add(int64(n))
		if end {
			h.acked <- nil
			return
		}
	}
}
