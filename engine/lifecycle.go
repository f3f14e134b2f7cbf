// This file holds a connection's lifecycle: how it opens (its layer's
// handshake, then its owner makes it ready) and how it closes, on request
// from any goroutine or at once on its loop, and what runs once it has.

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/simplerpc/simplerpc/codec"
)

// open starts a new connection on its loop: its layer's handshake, if it
// has one, or at once what its owner does with a ready connection.
func (c *conn) open(newLayer func(*conn) layer) {
	l := c.loop
	outer := l.depth == 0 // an opening round (loop.opening) unless nested
	if outer {
		l.opening = true
	}
	l.enter()
	defer func() {
		l.leave()
		if outer {
			l.opening = false
		}
	}()
	if newLayer != nil {
		x := c.extra()
		x.tl = newLayered(c, newLayer(c), &l.layerBufs)
		// A wake may come after the connection closed: gnet has released
		// its buffers then.
		pump := func() {
			if !c.closed.Load() {
				c.traffic()
			}
		}
		wake := func() { _ = l.enqueue(task{kind: taskFunc, fn: pump}, nil) }
		if err := x.tl.l.start(c.layerOut, wake); err != nil {
			c.closeNow(err)
		}
		return
	}
	c.started = c.owner().ready(c)
}

// Close closes the connection after the frames queued before it. It is safe
// for concurrent use and returns at once.
func (c *conn) Close() error {
	c.closeWith(ErrLocalClose)
	return nil
}

// closeWith queues the close of the connection with reason, behind what is
// queued before it. Safe from any goroutine.
func (c *conn) closeWith(reason error) {
	if c.closed.Load() {
		return
	}
	if err := c.loop.enqueue(task{kind: taskClose, c: c, err: reason}, nil); err != nil {
		_ = c.gc.Close() // the loop is stopping: let gnet close it
	}
}

// closeNow writes what this round built for the connection and closes it,
// on the loop.
func (c *conn) closeNow(reason error) {
	if c.closed.Load() {
		return
	}
	if x := c.extra(); x.closeReason == nil {
		x.closeReason = reason
	}
	if o := c.out; o != nil && len(o.b) > 0 {
		out := o.b
		o.b = out[:0]
		_, _ = c.write(out)
	}
	if !c.closed.Load() {
		_ = c.loop.el.Close(c.gc)
	}
}

// onClose runs once when gnet closes the connection, on its loop: calls in
// flight fail, the owner forgets the connection, and the disconnect
// callback runs, if the connect callback did.
func (c *conn) onClose(err error) {
	if c.closed.Swap(true) {
		return
	}
	if tl := c.layered(); tl != nil {
		err = tl.l.stop(err)
	}
	var reason error
	if x := c.x.Load(); x != nil {
		reason = x.closeReason
	}
	if reason == nil {
		switch {
		case err == nil && c.side.closing.Load():
			reason = ErrShutdown // the loops stopped under it
		case err == nil:
			reason = ErrLocalClose
		case errors.Is(err, io.EOF):
			reason = io.EOF
		default:
			reason = err
		}
	}
	l := c.loop
	l.stats.closed(reason)
	if c.paused {
		l.hold(c, 0)
	}
	l.enter()
	// Calls in flight fail first: an asynchronous call's done runs in this
	// round, before the disconnect callback.
	c.failCalls(fmt.Errorf("%w: %w", ErrClosed, reason))
	c.cancelContext(reason)
	c.owner().closed(c, reason)
	if log := c.side.cfg.logger; log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("simplerpc: connection closed", "conn", c.id, "reason", reason)
	}
	if c.reported {
		c.dispatch(job{kind: jobDisconnect, reason: reason}, nil)
	}
	c.out = nil
	l.leave()
}

// leave tells the server a retired connection is done with (-8): it
// writes what it has queued for it and closes it. Safe from any goroutine.
func (c *conn) leave() {
	if c.extra().leaveSent.Swap(true) {
		return
	}
	if err := c.enqueue(modeSend, codec.OpGoAway, []byte(`{"reason":"moved"}`), 0); err != nil {
		c.closeWith(ErrGoAway) // nothing can be sent: let it go
	}
}
