package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// budget is one command's --timeout: the bound on all of it, dialing,
// waiting for the message size, the work and closing. The work stops a
// reserve before the deadline so that the close fits in too. The zero
// budget bounds nothing.
type budget struct {
	timeout  time.Duration
	deadline time.Time
}

// newBudget starts a budget of timeout (none if timeout is 0).
func newBudget(timeout time.Duration) budget {
	if timeout <= 0 {
		return budget{}
	}
	return budget{timeout: timeout, deadline: time.Now().Add(timeout)}
}

// Closing a healthy connection takes well under a millisecond; a tenth of
// the budget, at most closeReserveMax, leaves room for a loaded machine.
const closeReserveMax = 250 * time.Millisecond

// reserve is the end of the budget kept for closing.
func (b budget) reserve() time.Duration { return min(b.timeout/10, closeReserveMax) }

// workEnd is when the work must stop, to leave time to close.
func (b budget) workEnd() time.Time { return b.deadline.Add(-b.reserve()) }

// context returns ctx ending at workEnd.
func (b budget) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if b.deadline.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, b.workEnd())
}

// sizeWait bounds the wait for the message size when there is no budget.
const sizeWait = 10 * time.Second

// dialTimeout is the engine.WithDialTimeout for the budget. The engine uses
// it for the TCP dial and, from the moment the dial returns, for the wait
// for the server's -2 frame, after which it closes the connection itself.
// That close matters: Client.Close does nothing before the message size is
// known, so a client whose server never announces one stays open until
// then (10s by default), and waiting for it overran the budget. The engine
// closes such a client half the reserve after workEnd: after the tool's
// own wait has ended, so that its message is the tool's (see awaitReady),
// and before the deadline that bounds the close. Without a budget the tool
// waits sizeWait from before the dial.
func (b budget) dialTimeout() time.Duration {
	if b.deadline.IsZero() {
		return sizeWait + closeReserveMax/2
	}
	return max(time.Until(b.workEnd()), 0) + b.reserve()/2
}

// closeGrace bounds the close without a budget.
const closeGrace = 2 * time.Second

// closeClient closes cl after the frames already sent and waits for it to
// finish, until the budget's deadline (closeGrace without one). It reports
// whether cl finished; if not, the process's exit closes the socket.
func closeClient(cl *engine.Client, b budget) bool {
	_ = cl.Close()
	end := b.deadline
	if end.IsZero() {
		end = time.Now().Add(closeGrace)
	}
	select {
	case <-cl.Done():
		return true
	default:
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-cl.Done():
		return true
	case <-t.C:
		return false
	}
}

// clientOptions are the options every client of call and listen has: any
// message size, and the budget's dial timeout. Dial returns once
// connected: awaitReady says in the command's words what did not come.
func clientOptions(b budget, extra ...engine.ClientOption) []engine.ClientOption {
	opts := append(sizeOptions(), engine.WithDialTimeout(b.dialTimeout()), engine.WithDialNoWait())
	return append(opts, extra...)
}

// errInterrupted reports that a signal ended the command.
var errInterrupted = errors.New("interrupted")

// ctxError explains why ctx ended: the time-out, with msg, or a signal.
func ctxError(ctx context.Context, msg string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errors.New(msg)
	}
	return errInterrupted
}

// dialError explains in one sentence a failed engine.Dial bounded by ctx,
// a deadline of wait.
func dialError(ctx context.Context, addr string, wait time.Duration, err error) error {
	if ctx.Err() != nil {
		return ctxError(ctx, fmt.Sprintf("cannot connect to %s within %v", addr, wait))
	}
	return fmt.Errorf("cannot connect to %s: %w", addr, dialCause(err))
}

// dialCause returns the operating system's reason for a failed dial
// ("connection refused") when there is one, else err.
func dialCause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// isReady reports whether cl has learned the message size, without
// waiting.
func isReady(cl *engine.Client) bool {
	select {
	case <-cl.Ready():
		return true
	default:
		return false
	}
}

// awaitReady waits until cl knows the server's message size, or ctx ends
// (a deadline of wait from before the dial, or a signal).
func awaitReady(ctx context.Context, cl *engine.Client, addr string, wait time.Duration) error {
	select {
	case <-cl.Ready():
		return nil
	case <-cl.Done():
		if isReady(cl) {
			return nil // ready, then closed at once: select chose at random
		}
		// The engine's own wait ends after ctx's deadline (dialTimeout):
		// past it, this close is the time-out, whichever was seen first.
		if dl, ok := ctx.Deadline(); ctx.Err() == nil && (!ok || time.Now().Before(dl)) {
			return fmt.Errorf("%s before announcing its message size", describeEnd(cl.Err()))
		}
	case <-ctx.Done():
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return errInterrupted
	}
	return fmt.Errorf("%s did not announce its message size within %v", addr, wait)
}

// ended waits, within ctx, for cl to finish after an operation failed
// with engine.ErrClosed, and says why the connection ended: the engine's
// own error ("use of closed network connection") does not.
func ended(ctx context.Context, cl *engine.Client) string {
	select {
	case <-cl.Done():
		return describeEnd(cl.Err())
	case <-ctx.Done():
		return "the connection closed"
	}
}

// describeEnd says why a connection ended, from the reason the engine
// gives ([engine.Client.Err]), as a clause: "the server closed the
// connection".
func describeEnd(reason error) string {
	switch {
	case reason == nil:
		return "the connection closed"
	case errors.Is(reason, io.EOF):
		return "the server closed the connection"
	case errors.Is(reason, syscall.ECONNRESET):
		return "the server reset the connection"
	case errors.As(reason, new(*codec.MalformedError)):
		return fmt.Sprintf("the server sent a malformed frame (%v)", reason)
	case handler.ReasonOf(reason) != "":
		return fmt.Sprintf("the server refused the connection (%v)", handler.Failure(reason))
	case errors.Is(reason, engine.ErrProtocol), errors.Is(reason, engine.ErrSizeOutOfBounds):
		return fmt.Sprintf("the server broke the protocol (%v)", reason)
	}
	return fmt.Sprintf("the connection ended (%v)", reason)
}
