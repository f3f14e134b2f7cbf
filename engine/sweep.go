// This file holds the server's periodic look at its connections: those
// idle past the idle timeout, those whose output makes no progress past the
// write deadline, and those whose partial frame does not complete within
// the frame deadline are closed. It costs nothing per frame: each loop
// counts ticks, and a connection notes the tick its wait began.

package engine

import (
	"time"
)

// sweepEvery returns how often the server looks at its connections, or 0
// when nothing needs it: a quarter of the shortest deadline.
func (c *config) sweepEvery() time.Duration {
	d := time.Duration(0)
	if c.maxOutTotal > 0 || c.maxInTotal > 0 {
		d = 4 * time.Second // the caps are looked at every second
	}
	for _, v := range []time.Duration{c.idleTimeout, c.writeDeadline, c.frameDeadline} {
		if v > 0 && (d == 0 || v < d) {
			d = v
		}
	}
	if d == 0 {
		return 0
	}
	return min(max(d/4, 10*time.Millisecond), time.Second)
}

// ticks returns how many sweeps of every make up d, at least 1.
func ticks(d, every time.Duration) uint32 {
	return uint32(max((d+every-1)/every, 1))
}

// sweep queues a look to every loop on each tick until the server stops.
func (s *Server) sweep(every time.Duration) {
	cfg := &s.side.cfg
	writeTicks, frameTicks := ticks(cfg.writeDeadline, every), ticks(cfg.frameDeadline, every)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.done:
			return
		case <-t.C:
		}
		if l := s.addrLimits; l != nil {
			l.prune(time.Now())
		}
		idleBefore := time.Now().Add(-cfg.idleTimeout).UnixNano()
		for _, l := range s.side.eachLoop() {
			_ = l.enqueue(task{kind: taskFunc, fn: func() { l.sweep(idleBefore, writeTicks, frameTicks) }}, nil)
		}
	}
}

// sweep is one look at the loop's connections. On the loop.
func (l *loop) sweep(idleBefore int64, writeTicks, frameTicks uint32) {
	if l.tick++; l.tick == 0 {
		l.tick = 1 // 0 means "not waiting"
	}
	cfg := &l.side.cfg
	for i := len(l.conns) - 1; i >= 0; i-- {
		if i >= len(l.conns) {
			continue
		}
		c := l.conns[i]
		switch {
		case cfg.idleTimeout > 0 && c.lastRecv.Load() < idleBefore:
			c.closeNow(ErrIdle)
		case cfg.writeDeadline > 0 && c.writeStalled(l.tick, writeTicks):
			c.closeNow(ErrWriteDeadline)
		case cfg.frameDeadline > 0 && c.partialAt != 0 && l.tick-c.partialAt >= frameTicks:
			c.closeNow(ErrFrameDeadline)
		}
	}
	if cfg.maxOutTotal > 0 || cfg.maxInTotal > 0 {
		loops := max(len(l.side.eachLoop()), 1)
		l.trim(cfg.maxOutTotal/loops, (*conn).outBytes, ErrSlowConsumer)
		l.trim(cfg.maxInTotal/loops, (*conn).inBytes, ErrInboundFull)
	}
}

// trim closes the loop's connections that hold the most bytes, as bytes
// counts them, largest first, until the loop's total is within limit (0:
// no limit): the server-wide caps of [WithMaxBuffered], split evenly among
// the loops. On the loop.
func (l *loop) trim(limit int, bytes func(*conn) int, reason error) {
	if limit <= 0 {
		return
	}
	total := 0
	for _, c := range l.conns {
		total += bytes(c)
	}
	for total > limit {
		var big *conn
		for _, c := range l.conns {
			if !c.closed.Load() && (big == nil || bytes(c) > bytes(big)) {
				big = c
			}
		}
		if big == nil || bytes(big) == 0 {
			return
		}
		total -= bytes(big)
		big.closeNow(reason)
	}
}

// outBytes is what the connection's output holds: queued, built and in
// gnet's buffer. On the loop.
func (c *conn) outBytes() int { return int(c.queued.Load()) + c.outLen() + c.outbound() }

// inBytes is what the connection's input holds, read and not handled: a
// partial frame, or frames waiting for their turn. On the loop.
func (c *conn) inBytes() int { return c.gc.InboundBuffered() }

// writeStalled reports whether the connection's output has made no
// progress for n ticks: bytes wait in gnet's buffer and the kernel has
// taken none of them since the last look. On the loop.
// The notes of a connection whose output never waited live in no
// connExtra: written counts from the last look instead, which the sweep
// takes every tick.
func (c *conn) writeStalled(tick, n uint32) bool {
	buffered := c.outbound()
	x := c.x.Load()
	if x == nil {
		if buffered == 0 {
			c.written = 0 // what x.taken would hold: all written was taken
			return false
		}
		x = c.extra()
	}
	taken := c.written - uint32(buffered)
	if buffered == 0 || taken != x.taken {
		x.taken, x.stallAt = taken, 0
		return false
	}
	if x.stallAt == 0 {
		x.stallAt = tick
		return false
	}
	return tick-x.stallAt >= n
}
