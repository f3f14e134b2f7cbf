package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/time/rate"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// side is what a server and a client share: options, the router, the
// worker pool and counters.
type side struct {
	cfg    config
	router *handler.Router
	pool   *pool
	// opened and closed keep the owner's registry; they run on the loop.
	opened  func(c *conn)
	closed  func(c *conn, reason error)
	dropped atomic.Uint64 // frames dropped by SlowDrop
	closing atomic.Bool   // the server is shutting down: sends fail
	calls   sync.Pool     // of chan callResult, reused by Call
}

// callChan returns an empty result channel for one call.
func (s *side) callChan() chan callResult {
	if ch, ok := s.calls.Get().(chan callResult); ok {
		return ch
	}
	return make(chan callResult, 1)
}

// conn is one connection, on the server or the client side. Fields marked
// loop-only are touched only by the goroutine of the connection's loop.
type conn struct {
	side   *side
	loop   *loop
	gc     gnet.Conn // thread-safe methods only, off the loop
	id     uint64
	remote net.Addr // immutable once set; formatted on demand

	closed   atomic.Bool
	ready    atomic.Bool  // client: the message size is known
	size     atomic.Int64 // outSize, readable off the loop
	queued   atomic.Int64 // bytes queued to the loop, not yet processed
	lastRecv atomic.Int64 // unix nanoseconds of the last inbound bytes (kept only for the idle sweep and the heartbeat)

	// What most connections never use, allocated on first use: an idle
	// connection costs a pointer for it, not 136 bytes.
	x atomic.Pointer[connExtra]

	// Loop-only.
	inSize, outSize int
	out             []byte
	idx             int32          // in loop.conns; two int32s keep the struct in a smaller size class
	strikes         int32          // rate-limited frames in a row
	scanner         *codec.Scanner // client: finds the first frame
	client          *Client        // client side only
}

// connExtra is the part of a connection that is allocated on first use:
// the application value, calls, groups, the worker-pool queue, the rate
// limiter and why the engine closed it.
type connExtra struct {
	valMu sync.Mutex // guards val
	val   any

	callMu  sync.Mutex // guards calls, callSeq
	calls   map[uint64]pending
	callSeq uint64

	groups []string // guarded by the server's groupsMu

	jobMu   sync.Mutex // guards jobs, running (worker-pool mode)
	jobs    []job
	running bool

	limiter     *rate.Limiter // set before the connection is shared
	closeReason error         // loop-only

	// Calls' requests have an outbound budget of their own (see
	// enqueueObj): callBytes is charged when a request is queued and
	// released only once the loop has seen its bytes leave for the kernel.
	// callHeld is the part the loop has written (into out or gnet's
	// buffer) and not yet seen leave.
	callBytes atomic.Int64
	callHeld  int64 // loop-only
	recheck   bool  // loop-only: in the loop's recheck list
	drainHeld bool  // loop-only: a client is writing the frames it held (Client.drainHeld)
	inDrain   bool  // loop-only: Client.drainHeld is running

	// Calls waiting for room in the budget (see waitRoom).
	roomWaiters atomic.Int32
	roomMu      sync.Mutex
	room        chan struct{} // closed when room is made; nil when nobody waits
	roomErr     error         // guarded by roomMu: why the connection closed
}

// extra returns the connection's lazily allocated part, allocating it on
// first use. It is safe for concurrent use.
func (c *conn) extra() *connExtra {
	if x := c.x.Load(); x != nil {
		return x
	}
	x := new(connExtra)
	if c.x.CompareAndSwap(nil, x) {
		return x
	}
	return c.x.Load()
}

type heldFrame struct {
	op  codec.Opcode
	obj []byte
}

type callResult struct {
	data []byte
	err  error
}

// pending is a call waiting for its reply: a Call's result channel, or
// what a CallAsync runs when its call ends.
type pending struct {
	ch    chan callResult
	async *asyncCall
}

// asyncCall is a CallAsync in flight.
type asyncCall struct {
	op   codec.Opcode
	resp any
	done func(error)
	// stop stops the context's AfterFunc. CallAsync sets it under callMu
	// while the call is in the table; whoever takes the call out reads it
	// after, with no lock.
	stop func() bool
}

func newConn(s *side, l *loop, gc gnet.Conn, id uint64) *conn {
	c := &conn{side: s, loop: l, gc: gc, id: id, idx: -1}
	c.remote = gc.RemoteAddr()
	if s.cfg.rateLimit > 0 {
		c.extra().limiter = rate.NewLimiter(rate.Limit(s.cfg.rateLimit), s.cfg.rateBurst)
	}
	c.lastRecv.Store(time.Now().UnixNano())
	return c
}

// ID returns the net id. It is safe for concurrent use.
func (c *conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address, copied when the connection opened.
// It is safe for concurrent use.
func (c *conn) RemoteAddr() string {
	if c.remote == nil {
		return ""
	}
	return c.remote.String()
}

// Value returns the application value. It is safe for concurrent use.
func (c *conn) Value() any {
	if c.client != nil {
		return c.client.Value()
	}
	x := c.x.Load()
	if x == nil {
		return nil
	}
	x.valMu.Lock()
	defer x.valMu.Unlock()
	return x.val
}

// SetValue stores the application value. It is safe for concurrent use.
func (c *conn) SetValue(v any) {
	if c.client != nil {
		c.client.SetValue(v)
		return
	}
	x := c.extra()
	x.valMu.Lock()
	x.val = v
	x.valMu.Unlock()
}

// Send encodes v and queues it. It is safe for concurrent use.
func (c *conn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, err)
	}
	return c.sendObj(op, obj)
}

// SendRaw validates obj and queues it. It is safe for concurrent use.
func (c *conn) SendRaw(op codec.Opcode, obj []byte) error {
	if c.loop != nil && c.loop.dispatching(obj) {
		// The very object the loop is dispatching: Decode validated it.
		return c.sendObj(op, obj)
	}
	obj, err := codec.Object(obj)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, err)
	}
	return c.sendObj(op, obj)
}

// sendObj queues a valid, compact object for the connection. The frame is
// built on the loop, at the size in force when it is written, so that size
// changes and a client's unknown size are handled in one place.
func (c *conn) sendObj(op codec.Opcode, obj []byte) error {
	return c.sendObjMode(context.Background(), modeSend, op, obj)
}

// sendMode says what a send does when the outbound queue is full.
type sendMode uint8

const (
	modeSend  sendMode = iota // ErrOutboundFull, and the slow-consumer policy applies
	modeCall                  // wait for room until ctx ends
	modeAsync                 // ErrOutboundFull, the connection untouched
)

// sendObjMode is sendObj with the given behaviour on a full outbound queue
// (see enqueueObj).
func (c *conn) sendObjMode(ctx context.Context, mode sendMode, op codec.Opcode, obj []byte) error {
	if c.client != nil {
		return c.client.sendObj(ctx, mode, op, obj)
	}
	return c.enqueueObj(ctx, mode, op, obj)
}

// enqueueObj queues obj for the loop to write. Sends and calls' requests
// are bounded separately, each by the outbound cap. Past it a send gets
// ErrOutboundFull and the slow-consumer policy applies. A call's request
// waits instead for room, or until ctx ends: thousands of calls made at
// once are a burst of the caller's own, not a peer that does not read. An
// asynchronous call, which must not block, fails with ErrOutboundFull and
// leaves the connection alone.
//
// A send's charge is released when the loop takes the frame; from there
// the loop's own check before each write (overLimit) catches a peer that
// stops reading. A request's charge is released only once its bytes have
// left for the kernel (releaseCalls), so that calls wait while the peer is
// slow to read them instead of piling up in gnet's buffer, and neither a
// call burst nor a slow peer's backlog of requests counts against the
// sends: the policy never closes a connection for its own calls.
func (c *conn) enqueueObj(ctx context.Context, mode sendMode, op codec.Opcode, obj []byte) error {
	if c.side.closing.Load() {
		return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, ErrServerClosed)
	}
	if c.closed.Load() {
		return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, ErrClosed)
	}
	limit := int(c.size.Load())
	if limit == 0 {
		limit = c.side.cfg.maxSize
	}
	if n := len(obj) + opLen(op); n > limit {
		return fmt.Errorf("engine: send opcode %d to conn %d: %w: %d bytes, message size is %d",
			op, c.id, codec.ErrFrameTooLarge, n, limit)
	}
	// Charged at the frame size: what the loop will hold once it is built.
	charge := int64(limit)
	budget := &c.queued
	kind := taskSend
	if mode != modeSend {
		budget = &c.extra().callBytes
		kind = taskCall
	}
	if q := budget.Add(charge); q > int64(c.side.cfg.maxOutbound) {
		budget.Add(-charge)
		switch mode {
		case modeSend:
			c.slow()
			return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, ErrOutboundFull)
		case modeAsync:
			return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, ErrOutboundFull)
		}
		if err := c.waitRoom(ctx, charge); err != nil {
			return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, err)
		}
	}
	if err := c.loop.enqueue(task{kind: kind, op: op, c: c, size: int(charge)}, obj); err != nil {
		budget.Add(-charge)
		return fmt.Errorf("engine: send opcode %d to conn %d: %w", op, c.id, err)
	}
	return nil
}

// waitRoom waits until charge more bytes fit in the calls' budget, and
// charges them. It fails with ctx's error, with ErrClosed (wrapping why)
// when the connection closes first, or with ErrServerClosed when the
// server shuts down.
func (c *conn) waitRoom(ctx context.Context, charge int64) error {
	x := c.extra()
	x.roomWaiters.Add(1)
	defer x.roomWaiters.Add(-1)
	for {
		// Register for the next signal before looking again, so that room
		// made in between cannot go unnoticed.
		x.roomMu.Lock()
		if x.room == nil {
			x.room = make(chan struct{})
		}
		room, closeErr := x.room, x.roomErr
		x.roomMu.Unlock()
		if closeErr != nil {
			return closeErr
		}
		if c.closed.Load() {
			return ErrClosed
		}
		if c.side.closing.Load() {
			return ErrServerClosed
		}
		if q := x.callBytes.Add(charge); q <= int64(c.side.cfg.maxOutbound) {
			return nil
		}
		x.callBytes.Add(-charge)
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signalRoom wakes the calls waiting for room in the budget, if any. The
// loop calls it when requests' bytes have left for the kernel, and when the
// connection closes. Safe from any goroutine.
func (c *conn) signalRoom() {
	x := c.x.Load()
	if x == nil || x.roomWaiters.Load() == 0 {
		return
	}
	x.roomMu.Lock()
	if x.room != nil {
		close(x.room)
		x.room = nil
	}
	x.roomMu.Unlock()
}

// closeRoom fails the calls waiting for room with err. On the loop, when
// the connection closes.
func (c *conn) closeRoom(err error) {
	x := c.x.Load()
	if x == nil {
		return
	}
	x.roomMu.Lock()
	x.roomErr = err
	if x.room != nil {
		close(x.room)
		x.room = nil
	}
	x.roomMu.Unlock()
}

// releaseCalls releases the calls' budget for the requests' bytes that have
// left for the kernel, counting every byte still in gnet's buffer as a
// request's. It runs after each write to the connection and on each read
// from it. gnet has no writability callback, so while bytes remain and the
// budget matters now (calls wait for room, the budget is nearly full, or a
// client is writing the frames it held), the connection also goes on the
// loop's recheck list. On the loop.
func (c *conn) releaseCalls() {
	x := c.x.Load()
	if x == nil || x.callHeld == 0 || c.closed.Load() {
		return
	}
	keep := min(x.callHeld, int64(c.gc.OutboundBuffered()+len(c.out)))
	if gone := x.callHeld - keep; gone > 0 {
		x.callHeld = keep
		x.callBytes.Add(-gone)
		c.signalRoom()
		if x.drainHeld {
			c.client.drainHeld(c)
			keep = x.callHeld
		}
	}
	if keep == 0 || x.recheck {
		return
	}
	if x.drainHeld || x.roomWaiters.Load() > 0 ||
		x.callBytes.Load()+int64(c.outSize) > int64(c.side.cfg.maxOutbound) {
		x.recheck = true
		c.loop.recheckLater(c)
	}
}

// slow applies the slow-consumer policy from any goroutine.
func (c *conn) slow() {
	if c.side.cfg.slowPolicy == SlowDrop {
		c.side.dropped.Add(1)
		return
	}
	c.closeWith(ErrSlowConsumer)
}

// Close closes the connection after the frames queued before it. It is safe
// for concurrent use and returns at once.
func (c *conn) Close() error {
	if c.client != nil {
		return c.client.Close()
	}
	return c.closeWith(ErrLocalClose)
}

func (c *conn) closeWith(reason error) error {
	if c.closed.Load() {
		return nil
	}
	if err := c.loop.enqueue(task{kind: taskClose, c: c, err: reason}, nil); err != nil {
		return c.gc.Close()
	}
	return nil
}

// Call sends a request and waits for its reply. When the outbound queue is
// full (WithMaxOutbound) it first waits for room, within ctx. It is safe for
// concurrent use, except from an inline callback (see [handler.Conn]).
func (c *conn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	// From the loop's own goroutine while it runs a callback, the call would
	// wait for a reply only that loop can read. Other goroutines (one the
	// callback started, say) may call at any time: the loop-wide flag alone
	// cannot tell them apart, so the goroutine id is compared too, and only
	// while the flag is set.
	if l := c.loop; l != nil && l.inCallback.Load() && l.gid.Load() == goid() {
		return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, ErrCallOnLoop)
	}
	data, err := c.request(op, req)
	if err != nil {
		return err
	}
	if c.closed.Load() {
		return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, ErrClosed)
	}
	ch := c.side.callChan()
	id := c.register(pending{ch: ch})
	// Closed between the check and the registration: failAll may have run.
	if c.closed.Load() {
		c.forget(id, ch)
		return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, ErrClosed)
	}

	// The envelope is copied when it is queued: a stack buffer will do.
	var stack [envelopeStack]byte
	if err := c.sendObjMode(ctx, modeCall, codec.OpRequest, appendEnvelope(stack[:0], id, op, data)); err != nil {
		c.forget(id, ch)
		return fmt.Errorf("engine: call opcode %d: %w", op, err)
	}
	select {
	case r := <-ch:
		c.side.calls.Put(ch)
		if r.err != nil {
			return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, r.err)
		}
		if resp != nil {
			if err := codec.Unmarshal(r.data, resp); err != nil {
				return fmt.Errorf("engine: call opcode %d on conn %d: decode reply: %w", op, c.id, err)
			}
		}
		return nil
	case <-ctx.Done():
		c.forget(id, ch)
		return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, ctx.Err())
	}
}

var errReservedOp = errors.New("opcode reserved for the protocol")

// request checks a call's opcode and encodes its request: a nil req is a
// call without arguments, sent as {} (as a nil result replies {}).
func (c *conn) request(op codec.Opcode, req any) ([]byte, error) {
	if op < 0 {
		return nil, fmt.Errorf("engine: call opcode %d: %w", op, errReservedOp)
	}
	if req == nil {
		return []byte("{}"), nil
	}
	data, err := codec.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, err)
	}
	return data, nil
}

// CallAsync sends a request without waiting for the reply: done runs once
// with the outcome, where the connection's callbacks run. It is safe for
// concurrent use, from inline callbacks too (see [handler.Conn]).
func (c *conn) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	if done == nil {
		return fmt.Errorf("engine: call opcode %d: %w", op, errNilDone)
	}
	data, err := c.request(op, req)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, err)
	}
	if c.closed.Load() {
		return fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, ErrClosed)
	}
	a := &asyncCall{op: op, resp: resp, done: done}
	id := c.register(pending{async: a})
	if c.closed.Load() { // closed meanwhile: failAll may have run before the entry was there
		return c.dropAsync(id, fmt.Errorf("engine: call opcode %d on conn %d: %w", op, c.id, ErrClosed))
	}
	var stack [envelopeStack]byte
	if err := c.sendObjMode(ctx, modeAsync, codec.OpRequest, appendEnvelope(stack[:0], id, op, data)); err != nil {
		return c.dropAsync(id, fmt.Errorf("engine: call opcode %d: %w", op, err))
	}
	if ctx.Done() == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { c.abandon(ctx, id) })
	x := c.x.Load() // set: register allocated it
	x.callMu.Lock()
	if _, ok := x.calls[id]; ok {
		a.stop = stop
		stop = nil
	}
	x.callMu.Unlock()
	if stop != nil {
		stop() // the call has already ended
	}
	return nil
}

var errNilDone = errors.New("nil done callback")

// register adds a call to the pending table and returns its id.
func (c *conn) register(p pending) uint64 {
	x := c.extra()
	x.callMu.Lock()
	defer x.callMu.Unlock()
	if x.calls == nil {
		x.calls = make(map[uint64]pending)
	}
	x.callSeq++
	x.calls[x.callSeq] = p
	return x.callSeq
}

// dropAsync removes a CallAsync whose request could not be queued, and
// returns err for CallAsync to return. If the call is no longer in the
// table, the connection closed meanwhile and failAll took it: done runs
// with that error, and only done reports it, so dropAsync returns nil.
func (c *conn) dropAsync(id uint64, err error) error {
	if _, ok := c.take(id); !ok {
		return nil
	}
	return err
}

// take removes call id from the pending table and returns it; ok is false
// if it was not there (its reply, its deadline or the connection's close
// took it first). Whoever takes a call ends it.
func (c *conn) take(id uint64) (p pending, ok bool) {
	x := c.x.Load()
	if x == nil {
		return p, false // no call was ever made
	}
	x.callMu.Lock()
	p, ok = x.calls[id]
	delete(x.calls, id)
	x.callMu.Unlock()
	return p, ok
}

// abandon ends an asynchronous call whose context ended before its reply.
// On the AfterFunc's goroutine: the call is taken from the table on the
// loop, in order with the frames read there, so that a reply read first
// still wins; done then runs with ctx's error where callbacks run. Without
// a loop to run it (the engine has stopped), here.
func (c *conn) abandon(ctx context.Context, id uint64) {
	take := func() (*asyncCall, error) {
		p, ok := c.take(id)
		if !ok {
			return nil, nil // its reply, or the connection's close, came first
		}
		return p.async, fmt.Errorf("engine: call opcode %d on conn %d: %w", p.async.op, c.id, ctx.Err())
	}
	if l := c.loop; l != nil && l.enqueue(task{kind: taskFunc, fn: func() {
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
		err = fmt.Errorf("engine: call opcode %d on conn %d: %w", a.op, c.id, err)
	}
	c.dispatch(job{kind: jobAsync, async: a, reason: err}, nil)
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
	c.outSize = n
	c.size.Store(int64(n))
	if c.client != nil {
		c.client.size.Store(int64(n))
	}
}

func appendUint(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

// forget removes an abandoned call. When the entry was still there no
// reply can reach ch any more, and ch goes back to the side's pool;
// otherwise a result is on its way to ch, which is left to the collector.
func (c *conn) forget(id uint64, ch chan callResult) {
	if _, ok := c.take(id); ok {
		c.side.calls.Put(ch)
	}
}

// pendingCalls returns the number of calls waiting for a reply.
func (c *conn) pendingCalls() int {
	x := c.x.Load()
	if x == nil {
		return 0
	}
	x.callMu.Lock()
	defer x.callMu.Unlock()
	return len(x.calls)
}

// complete hands a reply to its waiting call, if it still waits. On the
// loop.
func (c *conn) complete(id uint64, r callResult) {
	p, ok := c.take(id)
	switch {
	case !ok: // a stray reply, or one that came too late
	case p.async != nil:
		c.finishAsync(p.async, r) // decodes now: the data is borrowed
	default:
		if r.data != nil {
			r.data = bytes.Clone(r.data) // borrowed from the frame
		}
		p.ch <- r
		c.loop.woke = true // on the loop: c.loop is set
	}
}

// failAll fails every pending call with err. On the loop.
func (c *conn) failAll(err error) {
	x := c.x.Load()
	if x == nil {
		return
	}
	x.callMu.Lock()
	calls := x.calls
	x.calls = nil
	x.callMu.Unlock()
	woke := false
	for _, p := range calls {
		if p.async != nil {
			c.finishAsync(p.async, callResult{err: err})
			continue
		}
		p.ch <- callResult{err: err}
		woke = true
	}
	if woke && c.loop != nil {
		c.loop.woke = true
	}
}

// goid returns the calling goroutine's id, read from the header of its
// stack trace ("goroutine 42 [running]:"). It costs a short traceback.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// ---- Loop side ----

// writeObj builds a frame for obj at the current size and adds it to out.
// Before a client knows the size there is nothing to write at.
func (c *conn) writeObj(op codec.Opcode, obj []byte) {
	if c.outSize == 0 {
		// Only the engine's own frames (a failure, a pong) can get here
		// before a client knows the size: the application's are held by the
		// Client until then. There is no size to write them at.
		return
	}
	if c.overLimit(c.outSize) {
		return
	}
	c.appendObj(op, obj)
}

// writeCall writes a call's request charged to the calls' budget: no
// slow-consumer check, the budget bounds it (see enqueueObj).
func (c *conn) writeCall(op codec.Opcode, obj []byte, charge int) {
	if c.outSize == 0 || !c.appendObj(op, obj) {
		// Not written: its charge goes back at once.
		if x := c.x.Load(); x != nil {
			x.callBytes.Add(-int64(charge))
			c.signalRoom()
		}
		return
	}
	if x := c.x.Load(); x != nil {
		x.callHeld += int64(charge)
	}
}

// appendObj adds a frame for obj at the current size to out.
// It reports whether it did.
func (c *conn) appendObj(op codec.Opcode, obj []byte) bool {
	if c.out == nil {
		c.out = c.loop.buffer()
		c.loop.dirty = append(c.loop.dirty, c)
	} else if len(c.out) >= flushAt {
		// A long burst: write what is built so far, so that the outbound
		// limit measures what the peer has not read, not what this round
		// has not written yet. gnet copies what the socket does not take.
		out := c.out
		c.out = out[:0]
		c.flushOut(out)
		if c.closed.Load() {
			return false
		}
	}
	// Objects reach the loop validated (Marshal, Object, Decode, or built
	// here from validated parts): the frame is built without a rescan.
	out, err := codec.AppendValidated(c.out, c.outSize, op, obj)
	if err != nil {
		c.side.cfg.logger.Warn("simplerpc: dropped a frame that does not fit", "conn", c.id, "op", int32(op), "err", err)
		c.unfit(op, obj, err)
		return false
	}
	c.out = out
	return true
}

// unfit answers for a call frame that did not fit the frame size, so that
// no caller waits for its deadline: a request fails its own call with err,
// a reply is replaced by a reply failure. On the loop.
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
	if c.overLimit(len(f)) {
		return
	}
	if len(c.out) > 0 {
		c.out = append(c.out, f...)
		return
	}
	c.flushOut(f)
}

// overLimit applies the slow-consumer policy before n more bytes are
// written, reporting whether the frame must not be written. Calls'
// requests are not counted: they have their own budget.
func (c *conn) overLimit(n int) bool {
	if c.backlog()+n <= c.side.cfg.maxOutbound {
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
	if _, err := c.gc.Write(b); err != nil {
		return
	}
	if c.backlog() > c.side.cfg.maxOutbound && c.side.cfg.slowPolicy == SlowClose {
		c.closeNow(ErrSlowConsumer)
		return
	}
	c.releaseCalls()
}

// backlog returns the bytes written to the connection and not yet taken by
// the kernel, less those of calls' requests (as many as may be there). On
// the loop.
func (c *conn) backlog() int {
	n := c.gc.OutboundBuffered() + len(c.out)
	if x := c.x.Load(); x != nil {
		n -= int(min(x.callHeld, int64(n)))
	}
	return n
}

// closeNow flushes out and closes the connection on the loop.
func (c *conn) closeNow(reason error) {
	if c.closed.Load() {
		return
	}
	if x := c.extra(); x.closeReason == nil {
		x.closeReason = reason
	}
	if out := c.out; len(out) > 0 {
		c.out = c.out[:0]
		_, _ = c.gc.Write(out)
	}
	if !c.closed.Load() {
		_ = c.loop.el.Close(c.gc)
	}
}

// announce sends -2 at the current outbound size, then switches to n
// (docs/PROTOCOL.md §3).
func (c *conn) announce(n int) {
	if c.outSize == n || c.closed.Load() {
		return
	}
	if c.out == nil {
		c.out = c.loop.buffer()
		c.loop.dirty = append(c.loop.dirty, c)
	}
	if out, err := codec.AppendMessageSize(c.out, c.outSize, n); err == nil {
		c.out = out
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

type failFrame struct {
	op              codec.Opcode
	id              uint64
	hasID           bool
	reason, message string
}

// writeFailure builds a failure frame on the loop.
func (c *conn) writeFailure(f *failFrame) {
	var id *uint64
	if f.hasID {
		id = &f.id
	}
	size := c.outSize
	if size == 0 {
		size = c.side.cfg.maxSize
	}
	b, err := codec.AppendFailureOp(nil, size, f.op, id, f.reason, f.message)
	if err != nil {
		return
	}
	// The frame's object, without the opcode and the padding.
	if obj, err := codec.Object(b[opLen(f.op):]); err == nil {
		c.writeObj(f.op, obj)
	}
}

// handleFrame decodes and acts on one inbound frame. buf is borrowed from
// gnet until the caller discards it.
func (c *conn) handleFrame(buf []byte) {
	// Calls in simplerpc's own form are read in one pass; every other frame
	// (and any call fastCall does not take) the general way.
	op, obj, call, fast := fastCall(buf)
	if !fast {
		var err error
		if op, obj, err = codec.Decode(buf); err != nil {
			var me *codec.MalformedError
			msg := err.Error()
			if errors.As(err, &me) {
				msg = me.Message
			}
			c.sendFailure(codec.OpFailure, nil, handler.ReasonMalformedPayload, msg)
			return
		}
	}
	if tap := c.side.cfg.tap; tap != nil {
		l := c.loop
		if l.gid.Load() == 0 {
			l.gid.Store(goid())
		}
		l.inCallback.Store(true)
		c.safely("tap", func() { tap(c, op, obj) })
		l.inCallback.Store(false)
	}
	if op >= 0 && !c.allow(codec.OpFailure, nil) {
		return
	}
	switch {
	case op >= 0:
		c.dispatch(job{kind: jobFrame, op: op}, obj)
	case op == codec.OpMessageSize:
		c.sizeFrame(obj)
	case op == codec.OpFailure:
		var f handler.Error
		if codec.Unmarshal(obj, &f) == nil && c.side.cfg.onFailure != nil {
			c.dispatch(job{kind: jobFailure, fail: &f}, nil)
		}
	case op == codec.OpRequest:
		r, ok := call, fast
		if !fast {
			r, ok = parseRequest(obj)
		}
		if !ok {
			c.sendFailure(codec.OpFailure, nil, handler.ReasonMalformedPayload, "Malformed request frame")
			return
		}
		if !c.allow(codec.OpReplyFailure, &r.id) {
			return // the caller gets its refusal with its id
		}
		c.dispatch(job{kind: jobCall, op: r.op, id: r.id}, r.data)
	case op == codec.OpReply || op == codec.OpReplyFailure:
		r, ok := reply{id: call.id, data: call.data}, fast
		if !fast {
			r, ok = parseReply(obj, op == codec.OpReplyFailure)
		}
		if !ok {
			return
		}
		if op == codec.OpReply {
			c.complete(r.id, callResult{data: r.data})
		} else {
			c.complete(r.id, callResult{err: handler.FromWire(r.reason, r.message)})
		}
	case op == codec.OpPing:
		_ = c.loop.enqueue(task{kind: taskSend, op: codec.OpPong, c: c}, obj)
	}
	// Other negative opcodes (-7 pong and any unknown one) only count as
	// traffic.
}

// allow applies the inbound rate limit. A refused frame is answered with a
// failure on op (with the call's id for a request).
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
	c.sendFailure(op, id, ReasonRateLimited, "Too many frames: rate limit exceeded")
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
		c.sendFailure(codec.OpFailure, nil, ReasonInvalidSize, fmt.Sprintf("message_size %d is outside [%d, %d]",
			*m.Size, c.side.cfg.minSize, c.side.cfg.maxSize))
		_ = c.loop.enqueue(task{kind: taskClose, c: c, err: ErrSizeOutOfBounds}, nil)
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

// setMessageSize queues a size change. Safe from any goroutine.
func (c *conn) setMessageSize(n int) error {
	cfg := &c.side.cfg
	if n < cfg.minSize || n > cfg.maxSize {
		return fmt.Errorf("engine: set message size %d: %w: outside [%d, %d]", n, codec.ErrInvalidSize, cfg.minSize, cfg.maxSize)
	}
	if c.closed.Load() {
		return fmt.Errorf("engine: set message size: %w", ErrClosed)
	}
	// Sends made after this call may already use the larger size: the
	// announcement is queued ahead of them.
	if int64(n) > c.size.Load() {
		c.size.Store(int64(n))
	}
	return c.loop.enqueue(task{kind: taskAnnounce, c: c, size: n}, nil)
}
