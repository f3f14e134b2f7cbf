// This file bounds the sends to all and to groups that wait for an event
// loop to take them: what SendAll, SendAllExcept and Group.Send hold until
// every loop has written their frame.

package engine

import "fmt"

// sharedOverhead is what one send to all or to a group holds on each loop
// beside its object: the task, the shared record and the frames built.
const sharedOverhead = 256

// sharedCharge is what a send to all or to a group of obj holds on each
// loop until that loop has taken it.
func sharedCharge(obj []byte) int64 { return int64(len(obj)) + sharedOverhead }

// sharedRoom reports an error wrapping ErrOutboundFull when a loop has
// more than the outbound cap (WithMaxOutbound) of sends to all and to
// groups queued that it has not taken yet: it is that far behind, and
// another send would only wait longer. The check is made for every loop
// before any is given the send, so that a send reaches all or none (a few
// concurrent senders may pass it together: the bound is exceeded by at
// most their sends). Safe from any goroutine.
func (s *side) sharedRoom(charge int64) error {
	limit := int64(s.cfg.maxOutbound)
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	for _, l := range s.loops {
		if q := l.sharedQueued.Load(); q+charge > limit {
			return fmt.Errorf("%w: an event loop has %d bytes of sends to all and to groups not taken yet (cap %d)",
				ErrOutboundFull, q, limit)
		}
	}
	return nil
}
