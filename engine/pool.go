// This file holds the worker pool that runs callbacks off the event loop,
// one connection at a time per worker.

package engine

import "sync"

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

// jobsBusy reports whether the worker pool has callbacks of c queued or
// running.
func (c *conn) jobsBusy() bool {
	x := c.x.Load()
	if x == nil || c.side.pool == nil {
		return false
	}
	x.jobMu.Lock()
	defer x.jobMu.Unlock()
	return x.running || len(x.jobs) > 0
}
