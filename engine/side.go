// This file holds what a server and a dialer share: their options, router,
// worker pool, event loops and counters.

package engine

import (
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/handler"
)

// side is what a [Server] and a [Dialer] share.
type side struct {
	cfg       config
	router    *handler.Router
	pool      *pool         // nil: callbacks run on the loop
	dropped   atomic.Uint64 // frames dropped by SlowDrop
	closing   atomic.Bool   // the server or dialer is closing: sends fail with closedErr
	closedErr error         // ErrServerClosed or ErrClosed
	owner     owner         // a server's: the server, owner of every connection; nil for a dialer's
	calls     sync.Pool     // of chan callResult, reused by Call
	inline    atomic.Int32  // callbacks running on the loops now, inline (see onLoop)
	stats     sideStats     // see stats.go

	loopsMu sync.Mutex // guards loops
	loops   []*loop

	unfit  atomic.Uint64 // broadcast frames a connection's size could not hold
	paused atomic.Uint64 // times a connection's reading paused on its backed-up output (read.go)

	hand  atomic.Pointer[handSession] // the server's handover under way: sends to moved connections are carried (handover_carry.go)
	adopt atomic.Pointer[adoptCarry]  // the server's adoption under way: sends to all reach connections adopted later (adopt_carry.go)

	// Warnings a peer could make repeat without bound.
	warnFull    repeated
	warnUnfit   repeated
	warnDropped repeated
	warnAccept  repeated
	warnAddr    repeated
	warnGnet    repeated
}

func (s *side) initWarnings() {
	s.warnFull.msg = "simplerpc: refused connections: server full"
	s.warnUnfit.msg = "simplerpc: broadcast frames larger than some connections' message size were not sent to them"
	s.warnDropped.msg = "simplerpc: dropped frames that do not fit the message size"
	s.warnAccept.msg = "simplerpc: accept failed; retrying (out of file descriptors?)"
	s.warnAddr.msg = "simplerpc: refused connections past the limits of their address"
	s.warnGnet.msg = "gnet: warnings"
}

// callChan returns an empty result channel for one call.
func (s *side) callChan() chan callResult {
	if ch, ok := s.calls.Get().(chan callResult); ok {
		return ch
	}
	return make(chan callResult, 1)
}

// loopFor returns our state for a gnet loop, creating it on first use.
func (s *side) loopFor(el gnet.EventLoop) *loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	for _, l := range s.loops {
		if l.el == el {
			return l
		}
	}
	l := newLoop(s, el)
	s.loops = append(s.loops, l)
	return l
}

// eachLoop returns a snapshot of the loops seen so far.
func (s *side) eachLoop() []*loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	return append([]*loop(nil), s.loops...)
}
