// This file holds a client's life after its first connection: the
// channels that tell it is ready and done, its reconnections with
// backoff, and its close.

package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// finish marks the client closed for good.
func (cl *Client) finish(reason error) {
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = reason
	}
	cl.held, cl.heldBytes = nil, 0
	cl.mu.Unlock()
	cl.doneOnce.Do(func() {
		cl.doneErr = reason
		cl.cancel(reason)
		cl.d.conns.Delete(cl)
		if cl.own {
			// Stopping the loops must not run on a loop: do it from a
			// goroutine, and only then report the client done.
			go func() {
				_ = cl.d.Close()
				close(cl.done)
			}()
			return
		}
		close(cl.done)
	})
}

// reconnect dials again with exponential backoff and full jitter until it
// succeeds, the client is closed or the dialer stops.
func (cl *Client) reconnect() {
	cfg := &cl.d.side.cfg
	backoff := cfg.backoffMin
	for attempt := 0; ; attempt++ {
		wait := time.NewTimer(time.Duration(rand.Int64N(int64(backoff) + 1)))
		select {
		case <-cl.d.stop:
			wait.Stop()
			cl.finish(ErrShutdown)
			return
		case <-wait.C:
		}
		cl.mu.Lock()
		closing := cl.closing
		cl.mu.Unlock()
		if closing != nil {
			cl.finish(closing)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.dialTimeout)
		// Counted before connect returns: the loop may read the -2 frame
		// and run the connect callbacks (ready) before that.
		cl.reconns.Add(1)
		err := cl.connect(ctx)
		cancel()
		if err == nil {
			return
		}
		cl.reconns.Add(-1)
		cfg.logger.Debug("simplerpc: reconnect failed", "addr", cl.addr, "attempt", attempt, "err", err)
		backoff = min(backoff*2, cfg.backoffMax)
	}
}

// Ready returns a channel closed once the first connection knows its
// message size. It is safe for concurrent use.
func (cl *Client) Ready() <-chan struct{} { return cl.readyCh }

// Done returns a channel closed once the client is closed for good: by
// Close, by losing its connection without [WithReconnect], or by its
// dialer's Close. [Client.Err] then says why.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err returns why the client closed, once [Client.Done] is closed: io.EOF
// if the server closed the connection, [ErrLocalClose] after Close, ...
func (cl *Client) Err() error {
	select {
	case <-cl.done:
		return cl.doneErr
	default:
		return nil
	}
}

// Run blocks until the client closes for good or ctx ends (the original's
// blocking start()); it closes the client when ctx ends. It returns nil
// after Close, ctx's error, or the reason the connection was lost.
func (cl *Client) Run(ctx context.Context) error {
	select {
	case <-cl.done:
	case <-ctx.Done():
		_ = cl.Close()
		<-cl.done
		return ctx.Err()
	}
	if errors.Is(cl.doneErr, ErrLocalClose) {
		return nil
	}
	return cl.doneErr
}

// Close closes the client after the frames already sent, and stops
// reconnecting. It returns at once; [Client.Done] is closed when it is
// done and the disconnect callback, if the connect callback ran, has run.
func (cl *Client) Close() error { return cl.close(ErrLocalClose) }

func (cl *Client) close(reason error) error {
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = reason
	}
	c, enrolled := cl.cur, cl.enrolled
	cl.mu.Unlock()
	switch {
	case c == nil || c.closed.Load():
		cl.finish(reason)
	case enrolled:
		c.closeWith(reason)
	}
	// Otherwise connect is enrolling it: it sees closing and closes it.
	return nil
}
