package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Kinds of callback work.
const (
	jobFrame uint8 = iota
	jobCall
	jobFailure
	jobConnect
	jobDisconnect
	jobAsync // a CallAsync's done
)

// job is one callback to run for a connection.
type job struct {
	kind      uint8
	op        codec.Opcode
	id        uint64
	data      []byte // owned (worker-pool mode)
	fail      *handler.Error
	reason    error      // jobDisconnect: why; jobAsync: the call's outcome
	reconnect bool       // jobConnect after a reconnection
	async     *asyncCall // jobAsync
}

// dispatch runs a callback inline on the loop, or hands it to the worker
// pool with a copy of data. Called on the loop.
func (c *conn) dispatch(j job, data []byte) {
	p := c.side.pool
	if p == nil {
		l := c.loop
		if l.gid.Load() == 0 {
			l.gid.Store(goid())
		}
		l.inCallback.Store(true)
		l.setDispatching(data)
		c.run(c, j, data)
		l.setDispatching(nil)
		l.inCallback.Store(false)
		return
	}
	if data != nil {
		j.data = append([]byte(nil), data...)
	}
	x := c.extra()
	x.jobMu.Lock()
	if len(x.jobs) >= c.side.cfg.workerQueue && (j.kind == jobFrame || j.kind == jobCall) {
		x.jobMu.Unlock()
		var id *uint64
		op := codec.OpFailure
		if j.kind == jobCall {
			id, op = &j.id, codec.OpReplyFailure
		}
		c.sendFailure(op, id, ReasonOverloaded, "Too many frames waiting for a worker")
		return
	}
	x.jobs = append(x.jobs, j)
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
		x.jobs = nil
		if len(jobs) == 0 {
			x.running = false
			x.jobMu.Unlock()
			return
		}
		x.jobMu.Unlock()
		for _, j := range jobs {
			c.run(c, j, j.data)
		}
	}
}

// run runs one callback. Panics in callbacks are recovered: none reaches
// gnet, which has no recover of its own.
func (c *conn) run(hc handler.Conn, j job, data []byte) {
	s := c.side
	switch j.kind {
	case jobFrame:
		if f := s.router.Dispatch(hc, j.op, data); f != nil {
			c.sendFailure(codec.OpFailure, nil, f.Reason, f.Message)
		}
	case jobCall:
		res, f := s.router.DispatchCall(hc, j.op, data)
		if f == nil {
			var obj []byte
			var err error
			if res == nil {
				obj = []byte("{}")
			} else if obj, err = codec.Marshal(res); err != nil {
				f = &handler.Error{Reason: handler.ReasonInternal, Message: "reply does not encode as a JSON object"}
				s.cfg.logger.Error("simplerpc: call reply", "conn", c.id, "op", int32(j.op), "err", err)
			}
			if f == nil {
				var stack [envelopeStack]byte
				if err := c.enqueueObj(context.Background(), modeSend, codec.OpReply, appendEnvelope(stack[:0], j.id, -1, obj)); err != nil {
					// Too large for any frame: say so rather than leave the
					// caller waiting.
					f = &handler.Error{Reason: handler.ReasonInternal, Message: "reply too large"}
				}
			}
		}
		if f != nil {
			c.sendFailure(codec.OpReplyFailure, &j.id, f.Reason, f.Message)
		}
	case jobFailure:
		if fn := s.cfg.onFailure; fn != nil {
			c.safely("failure callback", func() { fn(hc, j.fail) })
		}
	case jobConnect:
		if fn := s.cfg.onConnect; fn != nil {
			c.safely("connect callback", func() { fn(hc) })
		}
		if fn := s.cfg.onReconnect; fn != nil && j.reconnect {
			c.safely("reconnect callback", func() { fn(hc) })
		}
	case jobDisconnect:
		if fn := s.cfg.onDisconnect; fn != nil {
			c.safely("disconnect callback", func() { fn(hc, j.reason) })
		}
	case jobAsync:
		c.safely("call callback", func() { j.async.done(j.reason) })
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

// pool runs connections' callbacks on a fixed set of goroutines. A
// connection is scheduled at most once at a time, so its callbacks stay in
// order; the queue of ready connections is bounded by the connection count.
type pool struct {
	mu     sync.Mutex // guards ready, head, closed
	cond   *sync.Cond
	ready  []*conn
	head   int
	closed bool
	wg     sync.WaitGroup
}

func newPool(n int) *pool {
	p := &pool{}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(n)
	for range n {
		go p.work()
	}
	return p
}

func (p *pool) schedule(c *conn) {
	p.mu.Lock()
	p.ready = append(p.ready, c)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *pool) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for p.head == len(p.ready) && !p.closed {
			p.cond.Wait()
		}
		if p.head == len(p.ready) {
			p.mu.Unlock()
			return
		}
		c := p.ready[p.head]
		p.ready[p.head] = nil
		p.head++
		if p.head == len(p.ready) {
			p.ready, p.head = p.ready[:0], 0
		}
		p.mu.Unlock()
		c.runJobs()
	}
}

// stop lets the workers finish what is queued and waits for them.
func (p *pool) stop() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}
