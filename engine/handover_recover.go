// This file holds what a server does after a failed handover: it takes
// back the connections the successor did not acknowledge, within a bound.

package engine

import (
	"context"
	"time"
)

// recoverWithin bounds how long a failed handover waits for its loops to
// take the connections back: a loop that no longer runs (the engine
// stopping under it) held the recovery, and so HandOver, for ever.
const recoverWithin = 10 * time.Second

// recover takes back what the successor did not acknowledge after a
// failure: the connections' copies here are still open, so they are
// adopted again by this server, with their state, as the successor would
// have. It waits at most within for the loops to take them: past it, the
// connections not handed to a loop yet are closed, and one handed to a
// loop opens if the loop runs again. It returns how many it gave up on.
func (h *handSession) recover(within time.Duration) int {
	// A successor still reading sees the end, acknowledges what it took
	// and closes its side; one that does not within a second is given up.
	_ = h.uc.CloseWrite()
	select {
	case <-h.readDone:
	case <-time.After(time.Second):
		_ = h.uc.Close()
		<-h.readDone
	}
	h.mu.Lock()
	var back []handedConn
	for _, b := range h.sent {
		back = append(back, b...)
	}
	back = append(back, h.queue...)
	h.sent, h.queue = nil, nil
	h.mu.Unlock()
	// Connections still on their way resolve against the failure; wait for
	// them so that none is snapshotted after this.
	for h.pending.Load() > 0 {
		<-h.wake
		h.mu.Lock()
		back = append(back, h.queue...)
		h.queue = nil
		h.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	gaveUp := 0
	for _, rc := range back {
		if h.s.adoptConn(ctx, rc) != nil {
			gaveUp++
		}
	}
	ready := h.s.adoptBarrier(ctx) == nil
	log := h.s.side.cfg.logger
	switch {
	case gaveUp > 0 || !ready:
		log.Warn("simplerpc: handover failed: the loops did not take the connections back in time",
			"conns", len(back), "given_up", gaveUp, "within", within)
	case len(back) > 0:
		log.Warn("simplerpc: handover failed: connections taken back", "conns", len(back))
	}
	return gaveUp
}
