// This file holds how a server stops: a go-away that hands its clients to
// a successor, a graceful shutdown, a close, and the drain between.

package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
)

// GoAway prepares a restart or an upgrade: the server stops accepting (a
// successor may take over the listening sockets), tells every connection
// it is going away (docs/PROTOCOL.md §7, -8), and waits until every
// connection has closed or ctx ends. A client of this implementation with
// [WithReconnect] finishes the calls it has in flight, closes and
// reconnects, holding what it sends meanwhile, so that it moves to the
// successor without losing a frame; other peers stay until
// [Server.Shutdown] closes them. It returns ctx's error if connections
// remain. Sends still work meanwhile.
func (s *Server) GoAway(ctx context.Context, reason string) error {
	if s.state.Load() != stateRunning {
		return fmt.Errorf("engine: go away: %w", ErrServerClosed)
	}
	s.goingAway.Store(true)
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	s.accept.Wait()
	// This server's connections only: a backend's other servers stay.
	obj, err := codec.Marshal(map[string]string{"reason": reason})
	if err == nil {
		err = s.deliver(codec.OpGoAway, obj, 0, "")
	}
	if err != nil {
		return fmt.Errorf("engine: go away: %w", err)
	}
	if s.nconns.Load() == 0 {
		s.signalEmpty()
	}
	select {
	case <-s.empty:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("engine: go away: %d connections left: %w", s.nconns.Load(), ctx.Err())
	}
}

// ---- Shutdown ----

// Shutdown stops the server gracefully: it stops accepting, lets the frames
// already queued go out, closes every connection (the disconnect callbacks
// run with [ErrShutdown]) and stops the event loops, then its [Backend],
// if started (once; ctx bounds it too). Sends made once it has begun fail
// with [ErrServerClosed]. If ctx ends first, the remaining connections are
// closed at once and ctx's error is returned. Serve then returns
// [ErrServerClosed].
func (s *Server) Shutdown(ctx context.Context) error {
	switch s.state.Swap(stateShutdown) {
	case stateNew:
		err := s.stopBackend(ctx) // a StartOn that failed may have started it
		s.finish(ErrServerClosed)
		return err
	case stateShutdown:
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.side.closing.Store(true)
	s.side.cfg.stopTLS()
	s.once.Do(func() { close(s.stop) })
	for _, ln := range s.lns {
		_ = ln.Close() // again after GoAway: closing twice does nothing
	}
	s.accept.Wait()
	if s.nconns.Load() == 0 {
		s.signalEmpty()
	}
	err := s.drain(ctx)
	s.closeAll(ErrShutdown)
	// The disconnect callbacks have run on the loops once the last
	// connection has closed.
	select {
	case <-s.empty:
	case <-ctx.Done():
	case <-s.done:
	}
	s.authStop()
	s.cli.Stop() // the loops: connections still open close with ErrShutdown
	s.authWG.Wait()
	s.side.cfg.waitTLS()
	if s.side.pool != nil {
		s.side.pool.stop()
	}
	if berr := s.stopBackend(ctx); err == nil {
		err = berr
	}
	s.finish(ErrServerClosed)
	if err != nil {
		return fmt.Errorf("engine: shutdown: %w", err)
	}
	return nil
}

// finish reports the server stopped, with err for Serve and Err unless
// an earlier error (runErrOnce) said why.
func (s *Server) finish(err error) {
	s.doneOnce.Do(func() {
		s.errMu.Lock()
		if s.stopErr != nil {
			err = s.stopErr
		}
		s.errMu.Unlock()
		s.runErr = err
		close(s.done)
	})
}

// runErrOnce records why the server stops on its own, for finish.
func (s *Server) runErrOnce(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.stopErr == nil {
		s.stopErr = err
	}
}

// signalEmpty closes s.empty once.
func (s *Server) signalEmpty() {
	s.emptyMu.Lock()
	defer s.emptyMu.Unlock()
	select {
	case <-s.empty:
	default:
		close(s.empty)
	}
}

// Close stops the server at once, dropping what is queued. It is Shutdown
// with an expired context.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// drain waits until every loop has written its queue and gnet's outbound
// buffers are empty, or ctx ends. Each loop reports when it is drained
// (loop.drained); gnet tells nobody when its buffers empty, so a loop with
// bytes still there looks again on its recheck timer.
func (s *Server) drain(ctx context.Context) error {
	loops := s.side.eachLoop()
	done := make(chan struct{}, len(loops))
	for _, l := range loops {
		if err := l.enqueue(task{kind: taskFunc, fn: func() { l.drained(done) }}, nil); err != nil {
			done <- struct{}{}
		}
	}
	for range loops {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return nil
		}
	}
	return nil
}

// closeAll closes every connection with reason.
func (s *Server) closeAll(reason error) {
	for _, l := range s.side.eachLoop() {
		_ = l.enqueue(task{kind: taskFunc, fn: func() {
			for i := len(l.conns) - 1; i >= 0; i-- {
				if i < len(l.conns) {
					l.conns[i].closeNow(reason)
				}
			}
		}}, nil)
	}
}
