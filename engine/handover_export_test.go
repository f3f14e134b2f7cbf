package engine

import (
	"time"

	"github.com/simplerpc/simplerpc/handler"
)

// Replaying reports whether the connection with net id id still reads
// through the replay layer of its adoption, asked on its loop.
func Replaying(s *Server, id uint64) bool {
	c := s.conns.load(id)
	if c == nil {
		return false
	}
	ch := make(chan bool, 1)
	if c.loop.enqueue(task{kind: taskFunc, fn: func() { ch <- c.layered() != nil }}, nil) != nil {
		return false
	}
	return <-ch
}

// HoldLoopUntilHandoverEnds queues on c's loop a task that holds the loop
// until c's server's handover is ending (its sends no longer carried from
// then on), so that what is queued behind it runs during the end. It is
// for a save hook, which runs on the loop while its connection moves.
func HoldLoopUntilHandoverEnds(hc handler.Conn) error {
	c := hc.(*conn)
	return c.loop.enqueue(task{kind: taskFunc, fn: func() {
		for {
			if h := c.side.hand.Load(); h != nil {
				h.mu.Lock()
				ending := h.closing
				h.mu.Unlock()
				if ending {
					return
				}
			}
			time.Sleep(time.Millisecond) // a poll: nothing tells the loop
		}
	}}, nil)
}
