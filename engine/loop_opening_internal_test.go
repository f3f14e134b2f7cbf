// This file tests that a connection's opening round leaves the loop's
// queue to a round of its own: an adoption opens thousands of connections
// one round each, and each must not write every busy connection again.

package engine

import (
	"context"
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// countingLoop is a gnet event loop that only counts what is handed to
// Execute, and keeps it for the test to run.
type countingLoop struct {
	gnet.EventLoop
	runs []gnet.Runnable
}

func (e *countingLoop) Execute(_ context.Context, r gnet.Runnable) error {
	e.runs = append(e.runs, r)
	return nil
}

func TestOpeningRoundLeavesQueue(t *testing.T) {
	el := &countingLoop{}
	l := newLoop(&side{}, el)
	ran := 0
	for range 3 {
		if err := l.enqueue(task{kind: taskFunc, fn: func() { ran++ }}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(el.runs) != 1 {
		t.Fatalf("3 tasks queued on an idle loop: %d wake-ups, want 1", len(el.runs))
	}
	// A connection opens before the loop's own round runs.
	l.opening = true
	l.enter()
	l.leave()
	l.opening = false
	if ran != 0 || len(l.tasks) != 3 {
		t.Fatalf("an opening round ran %d of 3 queued tasks, left %d: want 0 run, 3 left", ran, len(l.tasks))
	}
	if len(el.runs) != 1 {
		t.Fatalf("%d wake-ups after the opening round, want still 1 (the loop's round is scheduled)", len(el.runs))
	}
	// The loop's own round runs them all.
	if err := el.runs[0].Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ran != 3 || len(l.tasks) != 0 {
		t.Fatalf("the loop's round ran %d of 3 tasks, left %d", ran, len(l.tasks))
	}
	// Any other round drains the queue itself.
	if err := l.enqueue(task{kind: taskFunc, fn: func() { ran++ }}, nil); err != nil {
		t.Fatal(err)
	}
	l.enter()
	l.leave()
	if ran != 4 {
		t.Fatalf("a round that is no opening left its queue: %d tasks ran, want 4", ran)
	}
}
