// This file waits: for an event on a channel, or for a condition that
// events make true.

package testkit

import (
	"context"
	"testing"
	"time"
)

// Recv returns the next value from ch, failing the test if ctx ends first.
// what says what the test waits for.
func Recv[T any](ctx context.Context, t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("waiting for %s: %v", what, context.Cause(ctx))
		var zero T
		return zero
	}
}

// WaitEvents waits until cond holds, testing it again each time an event
// comes on notify, failing the test if ctx ends first. Whoever makes cond
// true signals notify after it did, without blocking (a channel of one,
// sent to with select and default): no change is missed.
func WaitEvents(ctx context.Context, t testing.TB, notify <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-notify:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, context.Cause(ctx))
		}
	}
}

// WaitFor polls cond every few milliseconds until it holds, failing the
// test if ctx ends first: for a state that no event announces (a scrape, a
// counter of another process). It never decides anything by time: only
// cond ends the wait.
func WaitFor(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, context.Cause(ctx))
		}
	}
}
