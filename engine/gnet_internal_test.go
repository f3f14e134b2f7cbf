package engine

// This file pins when starting event loops warns that they leave the Go
// scheduler no P (schedulerNote).

import (
	"fmt"
	"strings"
	"testing"
)

// TestSchedulerNote: a server or a dialer is warned when its event loops
// would hold every P, and only then.
func TestSchedulerNote(t *testing.T) {
	for _, c := range []struct {
		procs, loops int
		warned       bool
	}{{1, 1, true}, {2, 1, false}, {4, 4, true}, {2, 3, true}, {8, 2, false}} {
		note := schedulerNote(c.procs, c.loops)
		if (note != "") != c.warned {
			t.Errorf("GOMAXPROCS %d, %d loops: note %q, want one: %v", c.procs, c.loops, note, c.warned)
		}
		if c.warned && !strings.Contains(note, fmt.Sprintf("GOMAXPROCS to %d or more", c.loops+1)) {
			t.Errorf("GOMAXPROCS %d, %d loops: the note %q does not say what to set", c.procs, c.loops, note)
		}
	}
}
