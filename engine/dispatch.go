// This file holds how callbacks run: inline on the loop, or queued per
// connection to the worker pool, and recovered from panics.

package engine

import (
	"fmt"
	"reflect"
	"runtime"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Kinds of callback work.
const (
	jobFrame uint8 = iota
	jobCall
	jobConnect
	jobDisconnect
	jobAsync // a CallAsync's done
)

// job is one callback to run for a connection.
type job struct {
	kind   uint8
	op     codec.Opcode
	id     uint64
	data   []byte     // owned (worker-pool mode)
	reason error      // jobDisconnect: why; jobAsync: the call's outcome
	async  *asyncCall // jobAsync
}

// dispatch runs a callback inline on the loop, or hands it to the worker
// pool with a copy of data. Called on the loop.
func (c *conn) dispatch(j job, data []byte) {
	p := c.side.pool
	if p == nil {
		c.runInline(&j, data)
		return
	}
	c.loop.stats.publish() // a worker's callback may read Stats (stats.go)
	if data != nil {
		j.data = append([]byte(nil), data...)
	}
	x := c.extra()
	x.jobMu.Lock()
	// The queue bounds the peer's frames and calls; the connect and
	// disconnect callbacks and calls' outcomes queue beside them (a first
	// call that came before the connect callback ran was refused).
	peer := j.kind == jobFrame || j.kind == jobCall
	if peer && x.frames >= c.side.cfg.workerQueue {
		x.jobMu.Unlock()
		var id *uint64
		op := codec.OpFailure
		if j.kind == jobCall {
			id, op = &j.id, codec.OpReplyFailure
			c.loop.stats.callsIn.Add(-1)
		}
		c.sendFailure(op, id, ReasonOverloaded, "Too many frames waiting for a worker")
		return
	}
	x.jobs = append(x.jobs, j)
	if peer {
		x.frames++
	}
	start := !x.running
	x.running = true
	x.jobMu.Unlock()
	if start {
		p.schedule(c)
		c.loop.woke = true
	}
}

// runJobs runs the connection's queued callbacks in order, on a worker.
func (c *conn) runJobs() {
	x := c.x.Load() // set: dispatch queued a job
	for {
		x.jobMu.Lock()
		jobs := x.jobs
		x.jobs, x.frames = nil, 0
		if len(jobs) == 0 {
			x.running = false
			x.jobMu.Unlock()
			return
		}
		x.jobMu.Unlock()
		for i := range jobs {
			c.run(&jobs[i], jobs[i].data)
		}
	}
}

// run runs one callback. Panics in callbacks are recovered: none reaches
// gnet, which has no recover of its own.
func (c *conn) run(j *job, data []byte) {
	s := c.side
	hc := handler.Conn(c)
	switch j.kind {
	case jobFrame:
		if f := s.router.Dispatch(hc, j.op, data); f != nil {
			c.sendFailure(codec.OpFailure, nil, f.Reason, f.Message)
		}
	case jobCall:
		res, f := s.router.DispatchCall(hc, j.op, data)
		if p, ok := res.(*handler.Pending); ok && f == nil {
			id, op := j.id, j.op
			p.Then(func(res any, f *handler.Error) { c.reply(op, id, res, f) })
			return
		}
		c.reply(j.op, j.id, res, f)
	case jobConnect:
		if fn := s.cfg.onConnect; fn != nil {
			c.safely("connect callback", func() { fn(hc) })
		}
	case jobDisconnect:
		if fn := s.cfg.onDisconnect; fn != nil {
			c.safely("disconnect callback", func() { fn(hc, j.reason) })
		}
	case jobAsync:
		c.safely("call callback", func() { j.async.done(j.reason) })
	}
}

// runInline runs a callback on the event loop. It is what onLoop looks for
// on a caller's stack, so it must stay a frame of its own.
//
// Within a round of the loop (enter to leave), the side's count of inline
// callbacks is raised once, by the first callback, and lowered as the
// round ends (leave), not per callback: a read of sixteen frames costs two
// atomic adds, not thirty-two. No defer is needed: a callback's panic is
// recovered below run (Router, safely), and one that escaped would end
// the process (gnet has no recover). The object handed is recorded
// around the callback (handed, direct.go); the record's release waits for
// a sender that holds its claim to finish the one frame it builds.
//
//go:noinline
func (c *conn) runInline(j *job, data []byte) {
	l := c.loop
	round := l.depth > 0
	if !round || !l.inlineUp {
		c.side.inline.Add(1)
		l.inlineUp = round // lowered by leave
		l.inlineRaises++
	}
	if j.kind != jobFrame && j.kind != jobCall {
		l.stats.publish() // not the frame's own callback (stats.go)
	}
	held := l.handed.hold(c, data)
	c.run(j, data)
	if held {
		l.handed.release()
	}
	if !round {
		c.side.inline.Add(-1)
	}
}

// tapInline runs the tap on the event loop, as runInline does a callback.
//
//go:noinline
func (c *conn) tapInline(tap func(handler.Conn, codec.Opcode, []byte), op codec.Opcode, obj []byte) {
	c.loop.stats.publish() // the tap may read Stats (stats.go)
	c.side.inline.Add(1)
	defer c.side.inline.Add(-1)
	c.safely("tap", func() { tap(c, op, obj) })
}

// Names of the frames onLoop looks for, taken from the functions
// themselves, so that they hold whatever path the package is built under.
var (
	runInlineFrame = funcName((*conn).runInline)
	tapInlineFrame = funcName((*conn).tapInline)
)

func funcName(fn any) string { return runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name() }

// onLoop reports whether the calling goroutine is running a callback on an
// event loop of side s, where a blocking call would wait for a reply only
// that loop can read. While no loop of s is in a round that has run a
// callback inline (runInline) it costs one atomic load; otherwise it
// walks the caller's own stack for runInline,
// which only a loop has there: a goroutine a callback started, or a
// worker, has a stack of its own. No goroutine is identified; the stack is
// the caller's.
func onLoop(s *side) bool {
	if s.inline.Load() == 0 {
		return false
	}
	var pcs [64]uintptr
	for skip := 2; ; skip += len(pcs) {
		n := runtime.Callers(skip, pcs[:])
		frames := runtime.CallersFrames(pcs[:n])
		for {
			f, more := frames.Next()
			if f.Function == runInlineFrame || f.Function == tapInlineFrame {
				return true
			}
			if !more {
				break
			}
		}
		if n < len(pcs) {
			return false
		}
	}
}

func (c *conn) safely(what string, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			c.side.cfg.logger.Error("simplerpc: "+what+" panicked", "conn", c.id, "panic", fmt.Sprint(p))
		}
	}()
	fn()
}
