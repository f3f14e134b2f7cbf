// This file holds how a server's acceptors pause for a handover
// ([Server.HandOver]): each parks until accepting resumes (the handover
// failed) or ends (the successor accepts on the same sockets).

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// handAccept is how a server pauses its acceptors for a handover.
type handAccept struct {
	begun     atomic.Bool // HandOver was called
	loopsOnly atomic.Bool // Adopt started the loops; StartOn has yet to accept

	mu     sync.Mutex    // guards paused, park, over
	paused chan struct{} // closed when accepting resumes; nil when not paused
	park   chan struct{} // one send per acceptor that parked
	over   bool          // the handover succeeded: the acceptors end
}

// pause stops every acceptor (a deadline in the past makes Accept return)
// and waits until each has parked: every connection it accepted is then
// open on a loop.
func (a *handAccept) pause(ctx context.Context, s *Server) error {
	a.mu.Lock()
	a.paused, a.park = make(chan struct{}), make(chan struct{}, len(s.lns))
	a.mu.Unlock()
	for _, ln := range s.lns {
		d, ok := ln.(interface{ SetDeadline(time.Time) error })
		if !ok {
			return fmt.Errorf("cannot pause a %T", ln)
		}
		if err := d.SetDeadline(time.Unix(1, 0)); err != nil {
			return err
		}
	}
	for range s.lns {
		select {
		case <-a.park:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.stop:
			return ErrServerClosed
		}
	}
	return nil
}

// finish ends the paused acceptors after a handover that succeeded: the
// successor accepts on the listening sockets now.
func (a *handAccept) finish() {
	a.mu.Lock()
	a.over = true
	a.mu.Unlock()
	a.resume()
}

// resume lets the acceptors accept again.
func (a *handAccept) resume() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused != nil {
		close(a.paused)
		a.paused = nil
	}
}

// parked reports whether err is the pause of a handover (ok), and if so
// waits until accepting resumes (resume) or the acceptor must end: the
// handover succeeded, or the server stops. Called by an acceptor.
func (s *Server) parked(ln net.Listener, err error) (resume, ok bool) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false, false
	}
	a := &s.hand
	a.mu.Lock()
	paused, park := a.paused, a.park
	a.mu.Unlock()
	if paused != nil {
		park <- struct{}{}
		select {
		case <-paused:
		case <-s.stop:
			return false, true
		}
	}
	a.mu.Lock()
	over := a.over
	a.mu.Unlock()
	if over {
		return false, true
	}
	// A pause that ended, perhaps before this acceptor saw it.
	_ = ln.(interface{ SetDeadline(time.Time) error }).SetDeadline(time.Time{})
	return true, true
}
