// This file holds the event loop's queue: every write to a connection,
// from the loop or any other goroutine, goes through it, in order, and is
// written once per round.

package engine

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
)

// Task kinds queued to a loop.
const (
	taskSend      uint8 = iota // a frame for one connection
	taskBroadcast              // a frame for every connection of the loop (or a group)
	taskClose                  // close one connection after what is queued before it
	taskAnnounce               // send -2 at the current size, then switch to the new size
	taskFunc                   // run fn on the loop
	taskFailure                // a failure frame for one connection
	taskCall                   // a call's request for one connection
)

// task is one unit of work for a loop. Objects live in the loop's arena so
// that queueing a frame does not allocate.
type task struct {
	kind   uint8
	op     codec.Opcode
	c      *conn
	off, n int    // object bytes in the arena
	size   int    // taskAnnounce: the new size; taskSend: bytes charged to c.queued; taskCall: to credit.waiting; taskBroadcast: to loop.sharedQueued
	id     uint64 // taskCall: the call
	err    error
	shared *shared
	fn     func()
	fail   *failFrame
}

// loop is our state for one gnet event loop. Every write to a connection
// goes through its loop's queue, from the loop itself or from any other
// goroutine, so frames to one connection keep the order of the sends. The
// loop drains the queue at the end of each round of callbacks (so replies
// made while handling one read go out in one write per connection) and,
// for sends from other goroutines, in one Execute per burst.
type loop struct {
	el   gnet.EventLoop
	side *side
	run  gnet.RunnableFunc

	// Sends to all and to groups queued and not taken yet, in bytes
	// (sharedbound.go). Shared with other goroutines.
	sharedQueued atomic.Int64

	mu        sync.Mutex // guards tasks, arena, busy, scheduled
	tasks     []task
	arena     []byte
	busy      bool // the loop is in a round and drains before it ends
	scheduled bool // an Execute is pending
	// pending is set while tasks are queued or a batch of them is being
	// run: written under mu, read by sendHanded (direct.go), which must
	// not put a frame before them.
	pending atomic.Bool

	// Loop-only.
	depth      int  // nesting of enter: gnet may run OnClose inside a Write
	woke       bool // this round made a goroutine runnable (see leave)
	inlineUp   bool // this round raised side.inline (runInline); leave lowers it
	spareTasks []task
	spareArena []byte
	conns      []*conn   // server: every open connection of this loop
	dirty      []*conn   // connections with bytes in out
	free       []*outBuf // output buffers to lend (conn.lend)
	layerBufs  bufPool   // for the connections with a layer (transport.go)
	tick       uint32    // 1 + sweeps so far (sweep.go); never 0
	heldIn     int       // unread input of the paused connections (memlimit.go)
	heldPeak   int       // the largest heldIn seen, for the tests
	trimCount  uint32    // rechecks so far, for trimOutbound

	// Connections with something waiting on outbound credit, a paused
	// read or a waiting frame (see credit), looked at again every
	// recheckEvery. Loop-only, but for the two functions, built once.
	rechecks     []*conn
	recheckArmed bool
	recheckFire  func() // the timer's: queues recheckAll
	recheckAllFn func()

	stats loopStats // see stats.go

	handed handed // the object an inline callback was handed (direct.go)
	// opening: the round is a connection's opening (conn.open), which
	// writes what it built but leaves what is queued to a round of its
	// own: gnet opens the connections of an adoption or a burst of
	// accepts one round each, and draining the queue in each would write
	// to every busy connection once per connection opened.
	opening bool

	fan     fanRun // the sends to all in a row being written (broadcast.go)
	flushes int    // writes of frames to a socket (flushOut) so far, for the tests
	// inlineRaises counts the raises of side.inline (runInline) so far,
	// for the tests.
	inlineRaises int
	wsFramed     int // WebSocket messages framed so far, for the tests
}

// maxBatches bounds the batches of queued tasks one round takes: a round
// that other goroutines keep feeding must end, or the loop would read no
// socket while they send.
const maxBatches = 64

// recheckEvery is how often the loop looks again at the connections that
// wait on outbound credit: one timer per loop, armed only while some do
// (gnet has no "output drained" event, see credit).
const recheckEvery = 5 * time.Millisecond

func newLoop(s *side, el gnet.EventLoop) *loop {
	l := &loop{el: el, side: s, tick: 1}
	l.run = func(context.Context) error {
		l.enter()
		l.leave()
		return nil
	}
	l.recheckAllFn = l.recheckAll
	l.recheckFire = func() {
		// Fails only when the engine stops, and then nothing waits.
		_ = l.enqueue(task{kind: taskFunc, fn: l.recheckAllFn}, nil)
	}
	return l
}

// recheckLater puts c on the recheck list and arms the loop's timer if it
// is not armed. On the loop.
func (l *loop) recheckLater(c *conn) {
	l.rechecks = append(l.rechecks, c)
	if !l.recheckArmed {
		l.recheckArmed = true
		time.AfterFunc(recheckEvery, l.recheckFire)
	}
}

// recheckAll looks again at every connection on the recheck list; those
// still waiting go back on it. On the loop.
func (l *loop) recheckAll() {
	list := l.rechecks
	l.rechecks, l.recheckArmed = nil, false
	for i, c := range list {
		list[i] = nil
		c.recheck()
	}
	if l.side.cfg.maxOutTotal > 0 {
		l.trimOutbound()
	}
	if l.rechecks == nil {
		l.rechecks = list[:0]
	}
}

// enqueue adds t, copying obj into the arena. It wakes the loop unless the
// loop is in a round or already woken.
func (l *loop) enqueue(t task, obj []byte) error {
	l.mu.Lock()
	if obj != nil {
		t.off, t.n = len(l.arena), len(obj)
		l.arena = append(l.arena, obj...)
	}
	if len(l.tasks) == 0 && !l.pending.Load() {
		l.pending.Store(true)
	}
	l.tasks = append(l.tasks, t)
	wake := !l.busy && !l.scheduled
	if wake {
		l.scheduled = true
	}
	l.mu.Unlock()
	if wake {
		if err := l.el.Execute(context.Background(), l.run); err != nil {
			// The engine is stopping: the task will not run.
			l.mu.Lock()
			l.scheduled = false
			l.mu.Unlock()
			return ErrClosed
		}
	}
	return nil
}

// enter starts a round of callbacks on the loop.
func (l *loop) enter() {
	if l.depth++; l.depth > 1 {
		return
	}
	l.mu.Lock()
	l.busy = true
	if !l.opening { // this round drains the queue: a round scheduled before finds it empty
		l.scheduled = false
	}
	l.mu.Unlock()
	l.stats.batch(true) // frames are counted in runs until leave (stats.go)
}

// leave drains the queue and flushes every connection written to, until
// nothing is left, then ends the round. Only the outermost round drains:
// gnet may run OnClose (and so a nested enter/leave) inside a Write or a
// Close made while draining, and the nested round must only queue.
func (l *loop) leave() {
	if l.depth > 1 {
		l.depth--
		return
	}
	for batch := 0; ; batch++ {
		l.stats.publish()
		if l.woke {
			// This round made a goroutine runnable: a caller whose reply
			// came, a worker. It is most likely queued on this loop's P,
			// and gnet next blocks in epoll_wait without handing the P
			// over; with no other P free (GOMAXPROCS=1, or all busy) it
			// would wait until sysmon takes the P back, which measured up
			// to 13 ms. Yield so that it runs now. What it sends meanwhile
			// joins this round's queue (busy is still set) and leaves in
			// the drain below, without an Execute.
			l.woke = false
			runtime.Gosched()
		}
		l.flush()
		l.mu.Lock()
		if len(l.tasks) == 0 {
			l.busy = false
			if l.pending.Load() {
				l.pending.Store(false) // every batch taken has run
			}
			l.mu.Unlock()
			break
		}
		if batch == maxBatches || l.opening {
			// Producers keep this round busy, or it is a connection's
			// opening: end it, so that the loop reads its sockets and
			// runs gnet's other work, and take the rest in a round of
			// its own.
			l.busy = false
			wake := !l.scheduled
			l.scheduled = true
			l.mu.Unlock()
			if wake && l.el.Execute(context.Background(), l.run) != nil {
				l.mu.Lock()
				l.scheduled = false // the engine is stopping: nothing will run them
				l.mu.Unlock()
			}
			break
		}
		tasks, arena := l.tasks, l.arena
		// The spares are handed over, never shared: producers append to
		// l.tasks while this batch is processed.
		l.tasks, l.arena = l.spareTasks[:0], l.spareArena[:0]
		l.spareTasks, l.spareArena = nil, nil
		l.mu.Unlock()
		for i := 0; i < len(tasks); i++ {
			if tasks[i].kind == taskBroadcast {
				if n := l.broadcastRun(tasks[i:]); n > 1 {
					i += n - 1 // sends to all in a row: one write per connection (broadcast.go)
					continue
				}
			}
			l.process(&tasks[i], arena)
		}
		clear(tasks)
		l.spareTasks, l.spareArena = tasks[:0], arena[:0]
	}
	if l.inlineUp {
		l.inlineUp = false
		l.side.inline.Add(-1)
	}
	l.stats.batch(false)
	l.depth = 0
}

func (l *loop) process(t *task, arena []byte) {
	switch t.kind {
	case taskSend:
		if !t.c.closed.Load() {
			t.c.writeSend(t, arena[t.off:t.off+t.n])
		} else if l.side.hand.Load() != nil {
			l.carrySend(t.c, t.op, arena[t.off:t.off+t.n]) // moved in a handover (handover_carry.go)
		}
	case taskCall:
		if !t.c.closed.Load() {
			t.c.writeCall(t, arena[t.off:t.off+t.n])
		}
	case taskBroadcast:
		l.broadcast(t.op, t.shared)
		l.sharedQueued.Add(-int64(t.size)) // sharedbound.go
	case taskClose:
		t.c.closeNow(t.err)
	case taskAnnounce:
		t.c.announce(t.size)
	case taskFunc:
		t.fn()
	case taskFailure:
		if !t.c.closed.Load() {
			t.c.writeFailure(t.fail)
		}
	}
}

// outBuf is an output buffer of a loop's, lent to a connection while it
// has frames built in the loop's round and not yet written (conn.out):
// a connection that is not writing holds a nil pointer, not a slice.
type outBuf struct{ b []byte }

// buffer returns an empty output buffer.
func (l *loop) buffer() *outBuf {
	if n := len(l.free); n > 0 {
		o := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return o
	}
	return &outBuf{b: make([]byte, 0, 4096)}
}

// flush writes out every dirty connection with one Write each.
func (l *loop) flush() {
	for i := 0; i < len(l.dirty); i++ {
		c := l.dirty[i]
		l.dirty[i] = nil
		if c == nil {
			continue
		}
		o := c.out
		c.out = nil
		if o == nil {
			continue // closed in the round (conn.onClose)
		}
		if !c.closed.Load() && len(o.b) > 0 {
			c.flushOut(o.b)
			c.release()
		}
		if cap(o.b) <= 2*flushAt && len(l.free) < 32 {
			o.b = o.b[:0]
			l.free = append(l.free, o)
		}
	}
	l.dirty = l.dirty[:0]
}

// add registers a new server connection with the loop.
func (l *loop) add(c *conn) {
	c.idx = int32(len(l.conns))
	l.conns = append(l.conns, c)
}

// remove unregisters c, swapping the last connection into its place.
func (l *loop) remove(c *conn) {
	i := int(c.idx)
	if i < 0 || i >= len(l.conns) || l.conns[i] != c {
		return
	}
	last := len(l.conns) - 1
	l.conns[i] = l.conns[last]
	l.conns[i].idx = int32(i)
	l.conns[last] = nil
	l.conns = l.conns[:last]
	c.idx = -1
}

// drained sends on done once every connection of the loop has written
// what is queued for it and gnet's buffers are empty. gnet gives no event
// for its buffers, so while bytes remain the loop looks again every
// recheckEvery.
func (l *loop) drained(done chan<- struct{}) {
	l.flush()
	for _, c := range l.conns {
		c.release()
		n := int64(c.used())
		if x := c.x.Load(); x != nil {
			n += x.credit.waiting.Load() // requests and held frames not yet written
		}
		if n > 0 {
			time.AfterFunc(recheckEvery, func() {
				if l.enqueue(task{kind: taskFunc, fn: func() { l.drained(done) }}, nil) != nil {
					done <- struct{}{} // the loop has stopped: nothing is left to drain
				}
			})
			return
		}
	}
	done <- struct{}{}
}
