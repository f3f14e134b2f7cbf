// This file holds what a server counts and how it is read: counters kept
// per event loop, on memory only that loop writes (an uncontended atomic
// add; never one shared counter per frame; the frames of a round added
// once per opcode in a row, not once each), summed by Stats; what only a
// loop may look at, gnet's buffers, collected by a task on each loop
// (Host.Backlog); and the hook that times the calls a server makes (set
// by Host.ObserveCalls, host.go).

package engine

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// RefuseReason names why a server refused a connection that the kernel had
// accepted, before the connection opened: it never reached a callback. The
// set is small and fixed, so that it can label a metric; a reason is added
// with the feature that refuses for it.
type RefuseReason string

// Reasons a server refuses a connection.
const (
	// RefuseServerFull: the server was at its connection limit
	// ([WithMaxConns]); the peer got a ServerFull failure first.
	RefuseServerFull RefuseReason = "server_full"
	// RefuseShutdown: the server was shutting down.
	RefuseShutdown RefuseReason = "shutdown"
	// RefusePerIP: the address had [WithMaxConnsPerAddr] connections.
	RefusePerIP RefuseReason = "per_ip"
	// RefuseRate: the address opened connections faster than
	// [WithConnRatePerAddr].
	RefuseRate RefuseReason = "rate"
	// RefuseAuth: the connection's authentication failed or did not come
	// in time ([WithAuth]), counted when the failure is sent. Such a
	// connection opened before it was refused: it is in Accepted, and its
	// close, which follows, in Disconnects[DisconnectAuth].
	RefuseAuth RefuseReason = "auth"
)

var refuseReasons = [...]RefuseReason{RefuseServerFull, RefuseShutdown, RefusePerIP, RefuseRate, RefuseAuth}

const (
	refuseFull = iota // index of RefuseServerFull in refuseReasons
	refuseShutdown
	refusePerIP
	refuseRate
	refuseAuthIdx
)

// FailureOther is the reason under which [Stats] counts the failures
// whose reason is neither the handler's nor this package's: the
// application's own reasons, which are not bounded.
const FailureOther = "other"

// failureReasons are the failure reasons Stats counts one by one.
var failureReasons = [...]string{
	handler.ReasonArgumentTypeError, handler.ReasonArgumentValueError, handler.ReasonArgumentMissing,
	handler.ReasonMalformedPayload, handler.ReasonInternal, handler.ReasonUnknownOpcode,
	ReasonServerFull, ReasonRateLimited, ReasonInvalidSize, ReasonOverloaded, ReasonAddressFull,
	ReasonUnauthorized, FailureOther,
}

// failureIndex returns the index of reason in failureReasons; the last for
// any other.
func failureIndex(reason string) int {
	for i, r := range failureReasons[:len(failureReasons)-1] {
		if reason == r {
			return i
		}
	}
	return len(failureReasons) - 1
}

// wireFailureIndex is failureIndex for a reason read from a frame.
func wireFailureIndex(reason []byte) int {
	for i, r := range failureReasons[:len(failureReasons)-1] {
		if string(reason) == r {
			return i
		}
	}
	return len(failureReasons) - 1
}

// wireReason returns the reason of a failure frame's object (-1, or a -5
// envelope), borrowed from obj, or nil. It is a scan, not a parse, since
// it runs on the loop for every failure received: a reason with escapes,
// or an object it cannot read, counts as FailureOther.
func wireReason(obj []byte) []byte {
	i := bytes.Index(obj, []byte(`"reason"`))
	if i < 0 {
		return nil
	}
	rest := bytes.TrimLeft(obj[i+len(`"reason"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return nil
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return nil
	}
	rest = rest[1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil
	}
	return rest[:end]
}

// Opcodes are counted one by one from -7 (the protocol's lowest) to 255
// (the handler's dense range, where applications put theirs); the others
// are counted together, the application's and the protocol's apart.
const (
	countedOps = 256                  // application opcodes 0..255
	slotApp    = countedOps           // application opcodes from 256
	slotProto  = countedOps + 1       // -1 .. -7: slotProto + (-op - 1)
	protoOps   = 7                    // -1 .. -7
	slotNeg    = slotProto + protoOps // negative opcodes below -7
	opSlots    = slotNeg + 1
)

func opSlot(op codec.Opcode) int {
	switch {
	case op >= 0 && op < countedOps:
		return int(op)
	case op >= 0:
		return slotApp
	case op >= -protoOps:
		return slotProto + int(-op) - 1
	}
	return slotNeg
}

// frameOp returns the opcode a built frame starts with.
func frameOp(f []byte) codec.Opcode {
	neg, i := false, 0
	if len(f) > 0 && f[0] == '-' {
		neg, i = true, 1
	}
	var op codec.Opcode
	for ; i < len(f) && f[i] >= '0' && f[i] <= '9'; i++ {
		op = op*10 + codec.Opcode(f[i]-'0')
	}
	if neg {
		return -op
	}
	return op
}

// cacheLine separates what one loop writes from what other goroutines
// write: the loop's queue lock, another loop's counters.
type cacheLine [64]byte

// loopStats are one loop's counters. Only the loop adds to them, except
// callsIn, which workers also decrement; any goroutine reads them.
type loopStats struct {
	_           cacheLine
	in, out     [opSlots]atomic.Uint64 // frames by opcode slot
	bytesIn     atomic.Uint64
	bytesOut    atomic.Uint64
	accepted    atomic.Uint64
	disconnects [len(disconnectReasons)]atomic.Uint64
	failSent    [len(failureReasons)]atomic.Uint64
	failRecv    [len(failureReasons)]atomic.Uint64
	_           cacheLine
	callsIn     atomic.Int64 // inbound calls queued for or running in their handler
	_           cacheLine

	// Loop-only: within a round of the loop (enter to leave), the frames
	// counted and not added to in, out and the bytes yet, one run of an
	// opcode each way (see publish).
	round           bool
	pendIn, pendOut frameRun
	publishes       int // runs added to the counters so far, for the tests
}

// frameRun is frames of one opcode counted in this round and not yet
// added to the counters. Loop-only.
type frameRun struct {
	key           uint64 // runKey(op): the next frame joins if it has op; 0 (none) outside a round
	op            codec.Opcode
	frames, bytes uint64
}

// runKey is frameRun.key for op: never 0, the key no frame joins (outside
// a round, or after a failure frame, which is counted by reason too).
func runKey(op codec.Opcode) uint64 { return uint64(uint32(op)) | 1<<32 }

// frameIn counts a frame read, n bytes, and the failure it carries. On the
// loop.
func (s *loopStats) frameIn(op codec.Opcode, n int, obj []byte) {
	if r := &s.pendIn; r.key == runKey(op) {
		r.frames++ // the frame before was of the same opcode
		r.bytes += uint64(n)
		return
	}
	s.countIn(op, n, obj)
}

// countIn is frameIn for a frame that does not join the pending run;
// apart, so that frameIn, the case of nearly every frame, stays short.
//
//go:noinline
func (s *loopStats) countIn(op codec.Opcode, n int, obj []byte) {
	s.count(&s.pendIn, &s.in, &s.bytesIn, op, n)
	if op == codec.OpFailure || op == codec.OpReplyFailure {
		s.failRecv[wireFailureIndex(wireReason(obj))].Add(1)
		s.pendIn.key = 0
	}
}

// frameOut counts a frame built for writing, n bytes. On the loop.
func (s *loopStats) frameOut(op codec.Opcode, n int) {
	if r := &s.pendOut; r.key == runKey(op) {
		r.frames++
		r.bytes += uint64(n)
		return
	}
	s.countOut(op, n)
}

// countOut is frameOut for a frame that does not join the pending run;
// apart, as countIn is.
//
//go:noinline
func (s *loopStats) countOut(op codec.Opcode, n int) {
	s.count(&s.pendOut, &s.out, &s.bytesOut, op, n)
}

// count counts a frame that does not join the pending run r: within a
// round, r is added to the counters and starts again at op; outside one,
// the frame is added at once. On the loop.
func (s *loopStats) count(r *frameRun, by *[opSlots]atomic.Uint64, bytes *atomic.Uint64, op codec.Opcode, n int) {
	if !s.round {
		by[opSlot(op)].Add(1)
		bytes.Add(uint64(n))
		return
	}
	if r.frames != 0 {
		s.add(r, by, bytes)
	}
	r.key, r.op = runKey(op), op
	r.frames = 1
	r.bytes = uint64(n)
}

// batch starts (on) or ends a round's runs; ending one publishes them.
// On the loop, from enter and leave.
func (s *loopStats) batch(on bool) {
	if !on {
		s.publish()
		s.pendIn.key, s.pendOut.key = 0, 0
	}
	s.round = on
}

// add adds the run r to the counters and empties it. On the loop.
func (s *loopStats) add(r *frameRun, by *[opSlots]atomic.Uint64, bytes *atomic.Uint64) {
	by[opSlot(r.op)].Add(r.frames)
	bytes.Add(r.bytes)
	r.frames, r.bytes = 0, 0
	s.publishes++
}

// publish adds the frames counted and pending to the counters that Stats
// reads. The loop calls it before anything leaves it that could tell
// another goroutine of the frames: before each write to a socket
// (conn.wireWrite), before a callback other than a frame's own runs or
// is handed to a worker, before a call's reply wakes its caller, and as
// the round ends (leave). A frame's own inline callback may therefore not
// find the frames of its read in Stats yet. On the loop.
func (s *loopStats) publish() {
	if s.pendIn.frames != 0 {
		s.add(&s.pendIn, &s.in, &s.bytesIn)
	}
	if s.pendOut.frames != 0 {
		s.add(&s.pendOut, &s.out, &s.bytesOut)
	}
}

// failureSent counts a failure frame built for writing. On the loop.
func (s *loopStats) failureSent(reason string) {
	s.failSent[failureIndex(reason)].Add(1)
}

// closed counts a connection that closed with reason. On the loop.
func (s *loopStats) closed(reason error) { s.disconnects[disconnectIndex(reason)].Add(1) }

// sideStats are a server's counters that are not a loop's.
type sideStats struct {
	refused [len(refuseReasons)]atomic.Uint64 // counted in OnOpen, before a connection has a loop of ours
	calls   atomic.Pointer[callObserver]
	base    atomic.Pointer[Stats] // the counters a predecessor handed over with its connections (adopt.go)
}

// Stats are a running server's counters and gauges, read by
// [Server.Stats]. Counters (totals) start at zero when the server is made
// and never decrease; gauges are the state when they were read. The maps
// have a key for every reason of their set, zero or not.
type Stats struct {
	// Conns is the number of open connections: the original's
	// len(server.connections).
	Conns int
	// Accepted counts the connections opened, refused ones excluded.
	Accepted uint64
	// Refused counts the connections refused before they opened, by
	// reason.
	Refused map[RefuseReason]uint64
	// Disconnects counts the connections closed, by class of reason (see
	// [DisconnectReasonOf]); a connection handed to a successor counts
	// under [DisconnectHandedOver], and the successor counts it in its
	// Accepted again. Accepted less the sum of Disconnects is the
	// connections open.
	Disconnects map[DisconnectReason]uint64

	// FramesIn and FramesOut count the frames read and the frames built
	// to be written, the protocol's (-2 size, calls, pings) included;
	// BytesIn and BytesOut their bytes, at the frame size each was read or
	// written at. A TLS layer's own bytes are not counted. A loop adds
	// the frames of a read to these once per run of one opcode, before it
	// writes to a socket, wakes a caller or runs any other callback: the
	// inline callback of a frame may not find its read's frames yet.
	FramesIn, FramesOut uint64
	BytesIn, BytesOut   uint64
	// Opcodes counts the frames of each opcode from -7 to 255 that has
	// any, in increasing order of opcode; the frames of other opcodes are only in FramesIn and
	// FramesOut. A call's request is counted under -3 and its reply under
	// -4 or -5, whatever opcode it calls.
	Opcodes []OpcodeFrames

	// FailuresSent and FailuresReceived count failure frames (-1 and -5)
	// by reason: the handler's and this package's reasons one by one, the
	// rest under [FailureOther]. FailuresSent counts what the engine
	// built for connections that opened (a refusal's ServerFull frame is
	// in Refused).
	FailuresSent, FailuresReceived map[string]uint64
	// Dropped counts frames dropped for slow consumers under [SlowDrop].
	Dropped uint64
	// Unfit counts the broadcast frames (send-to-all, groups) not sent to a
	// connection whose message size, smaller than the server's (a peer may
	// ask for one), could not hold them.
	Unfit uint64
	// Paused counts the times a connection's reading paused because its
	// output was backed up (over half of [WithMaxOutbound]): its frames
	// waited, unread, until the output drained.
	Paused uint64

	// CallsIn is the number of calls from peers waiting for a worker or
	// being handled now (with handlers on the loop, only those running).
	// The calls the server made are in [Backlog].
	CallsIn int
	// Loops is the number of event loops that have had a connection.
	Loops int
	// LoopQueue is the number of tasks (sends, closes, calls) queued to
	// the event loops and not yet taken; LoopQueueMax the longest loop's.
	// A queue that stays long means a loop that cannot keep up.
	LoopQueue, LoopQueueMax int
	// WorkerQueue is the number of connections waiting for a worker of
	// [WithWorkerPool] (0 without one); the callbacks they wait to run are
	// in [Backlog].
	WorkerQueue int
}

// counters returns the server's Stats with only the counters: what a
// handover carries to the successor, whose counters go on from them.
func (s *Server) counters() *Stats {
	st := s.Stats()
	st.Conns, st.CallsIn, st.Loops, st.LoopQueue, st.LoopQueueMax, st.WorkerQueue = 0, 0, 0, 0, 0, 0
	return &st
}

// addCounters adds b's counters to st's: the keys of st's maps only, so
// that their sets stay fixed.
func (st *Stats) addCounters(b *Stats) {
	st.Accepted += b.Accepted
	st.FramesIn += b.FramesIn
	st.FramesOut += b.FramesOut
	st.BytesIn += b.BytesIn
	st.BytesOut += b.BytesOut
	st.Dropped += b.Dropped
	st.Unfit += b.Unfit
	st.Paused += b.Paused
	for r := range st.Refused {
		st.Refused[r] += b.Refused[r]
	}
	for r := range st.Disconnects {
		st.Disconnects[r] += b.Disconnects[r]
	}
	for r := range st.FailuresSent {
		st.FailuresSent[r] += b.FailuresSent[r]
		st.FailuresReceived[r] += b.FailuresReceived[r]
	}
	for _, f := range b.Opcodes {
		i, ok := slices.BinarySearchFunc(st.Opcodes, f.Op, func(o OpcodeFrames, op codec.Opcode) int { return cmp.Compare(o.Op, op) })
		if ok {
			st.Opcodes[i].In += f.In
			st.Opcodes[i].Out += f.Out
		} else if f.Op >= -protoOps && f.Op < countedOps {
			st.Opcodes = slices.Insert(st.Opcodes, i, f)
		}
	}
}

// OpcodeFrames are the frames of one opcode in [Stats].
type OpcodeFrames struct {
	Op      codec.Opcode
	In, Out uint64
}

// Stats returns the server's counters (this server's only, with a
// [Backend] too). It takes each event loop's queue
// lock for a moment and never waits for a loop; what only a loop can read
// is in [Host.Backlog]. It is safe for concurrent use, before Start and
// after Shutdown too, and allocates the maps and Opcodes each call: it is
// meant for a scrape or a log line, not per frame.
func (s *Server) Stats() Stats {
	st := Stats{
		Conns:            int(s.nconns.Load()),
		Dropped:          s.side.dropped.Load(),
		Unfit:            s.side.unfit.Load(),
		Paused:           s.side.paused.Load(),
		Refused:          make(map[RefuseReason]uint64, len(refuseReasons)),
		Disconnects:      make(map[DisconnectReason]uint64, len(disconnectReasons)),
		FailuresSent:     make(map[string]uint64, len(failureReasons)),
		FailuresReceived: make(map[string]uint64, len(failureReasons)),
	}
	for i, r := range refuseReasons {
		st.Refused[r] = s.side.stats.refused[i].Load()
	}
	var in, out [opSlots]uint64
	var disc [len(disconnectReasons)]uint64
	var sent, recv [len(failureReasons)]uint64
	loops := s.side.eachLoop()
	st.Loops = len(loops)
	for _, l := range loops {
		ls := &l.stats
		for i := range in {
			in[i] += ls.in[i].Load()
			out[i] += ls.out[i].Load()
		}
		st.BytesIn += ls.bytesIn.Load()
		st.BytesOut += ls.bytesOut.Load()
		st.Accepted += ls.accepted.Load()
		for i := range disc {
			disc[i] += ls.disconnects[i].Load()
		}
		for i := range sent {
			sent[i] += ls.failSent[i].Load()
			recv[i] += ls.failRecv[i].Load()
		}
		st.CallsIn += int(ls.callsIn.Load())
		l.mu.Lock()
		q := len(l.tasks)
		l.mu.Unlock()
		st.LoopQueue += q
		st.LoopQueueMax = max(st.LoopQueueMax, q)
	}
	for i := range in {
		st.FramesIn += in[i]
		st.FramesOut += out[i]
	}
	for op := codec.Opcode(-protoOps); op < countedOps; op++ {
		if i := opSlot(op); in[i] != 0 || out[i] != 0 {
			st.Opcodes = append(st.Opcodes, OpcodeFrames{Op: op, In: in[i], Out: out[i]})
		}
	}
	for i, r := range disconnectReasons {
		st.Disconnects[r] = disc[i]
	}
	for i, r := range failureReasons {
		st.FailuresSent[r] = sent[i]
		st.FailuresReceived[r] = recv[i]
	}
	if b := s.side.stats.base.Load(); b != nil {
		st.addCounters(b)
	}
	if s.addrs.Load() != nil { // serving: the pool, if any, was set before
		if p := s.side.pool; p != nil {
			st.WorkerQueue = p.depth()
		}
	}
	return st
}

// Backlog is what waits on a server's connections, read on their event
// loops by [Host.Backlog].
type Backlog struct {
	// Bytes is the outbound bytes of every connection not yet taken by the
	// kernel: sends queued to the loop, frames built, requests waiting for
	// outbound credit and gnet's buffer. MaxBytes is the largest
	// connection's, MaxConn its net id (0 if none has any).
	Bytes, MaxBytes int64
	MaxConn         uint64
	// CallsOut is the number of calls the server made that wait for their
	// replies.
	CallsOut int
	// Callbacks is the number of callbacks queued on connections for the
	// worker pool ([WithWorkerPool]), not yet run.
	Callbacks int
}

// Backlog asks each event loop for what waits on its connections, since
// only a loop may read gnet's buffers: one task per loop, which walks the
// loop's connections. It blocks until every loop has answered, or ctx
// ends, when it returns what the loops that answered reported and ctx's
// error: a loop that does not answer soon is itself worth an alert (see
// [Stats].LoopQueue). It returns a zero Backlog before Start and
// after Shutdown. It counts this server's connections only, with a
// [Backend] too. The walk costs each loop about a microsecond per hundred
// connections.
func (h *Host) Backlog(ctx context.Context) (Backlog, error) {
	loops := h.s.side.eachLoop()
	ch := make(chan Backlog, len(loops)) // a loop late for ctx does not block
	n := 0
	for _, l := range loops {
		if l.enqueue(task{kind: taskFunc, fn: func() { ch <- l.backlog() }}, nil) == nil {
			n++ // a loop that has stopped has nothing left
		}
	}
	var b Backlog
	for range n {
		select {
		case lb := <-ch:
			b.Bytes += lb.Bytes
			if lb.MaxBytes > b.MaxBytes {
				b.MaxBytes, b.MaxConn = lb.MaxBytes, lb.MaxConn
			}
			b.CallsOut += lb.CallsOut
			b.Callbacks += lb.Callbacks
		case <-ctx.Done():
			return b, ctx.Err()
		}
	}
	return b, nil
}

// backlog walks the loop's connections. On the loop.
func (l *loop) backlog() (b Backlog) {
	for _, c := range l.conns {
		n := int64(c.used())
		if x := c.x.Load(); x != nil {
			n += x.credit.waiting.Load() // requests and held frames not yet written
			b.CallsOut += x.calls.len()
			x.jobMu.Lock()
			b.Callbacks += len(x.jobs)
			x.jobMu.Unlock()
		}
		b.Bytes += n
		if n > b.MaxBytes {
			b.MaxBytes, b.MaxConn = n, c.id
		}
	}
	return b
}

// depth returns the number of connections waiting for a worker.
func (p *pool) depth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ready) - p.head
}

// timedCall is call, observed.
func (c *conn) timedCall(ctx context.Context, op codec.Opcode, req, resp any, send sendFunc) error {
	o := c.side.stats.calls.Load()
	if o == nil {
		return c.call(ctx, op, req, resp, send)
	}
	start := time.Now()
	err := c.call(ctx, op, req, resp, send)
	if errors.Is(err, errRetired) {
		return err // never sent: the client makes it again elsewhere, observed there
	}
	d := time.Since(start)
	c.safely("call observer", func() { o.fn(op, d, err) })
	return err
}

// timedDone returns done, observed.
func (c *conn) timedDone(op codec.Opcode, done func(error)) func(error) {
	o := c.side.stats.calls.Load()
	if o == nil || done == nil {
		return done
	}
	start := time.Now()
	return func(err error) {
		d := time.Since(start)
		c.safely("call observer", func() { o.fn(op, d, err) })
		done(err)
	}
}
