package cluster

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestIDsNeverRepeatAcrossBursts(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	g := newIDGen(5, clock.now)
	seen := map[uint64]bool{}
	var last uint64
	take := func(n int) {
		for range n {
			id := g.next()
			if id == 0 || seen[id] || id <= last || NodeOf(id) != 5 || counterOf(id) < g.epoch {
				t.Fatalf("id %#x after %#x (seen %v, epoch %d)", id, last, seen[id], g.epoch)
			}
			seen[id], last = true, id
		}
	}
	take(1000) // a burst within one microsecond: the counter runs ahead
	clock.set(clock.now().Add(-time.Hour))
	take(10) // a clock stepped back: still increasing
	clock.set(clock.now().Add(2 * time.Hour))
	take(10)

	// A restart later starts above every id of the earlier boot.
	clock.set(clock.now().Add(time.Second))
	g2 := newIDGen(5, clock.now)
	if g2.epoch <= counterOf(last) {
		t.Fatalf("new epoch %d not above the last counter %d", g2.epoch, counterOf(last))
	}
	if id := g2.next(); id <= last {
		t.Fatalf("first id of the new boot %#x <= %#x", id, last)
	}
}

func TestIDsFromManyLoops(t *testing.T) {
	g := newIDGen(MaxNode, time.Now)
	const loops, each = 4, 2000
	ids := make(chan uint64, loops*each)
	var wg sync.WaitGroup
	for range loops {
		wg.Go(func() {
			for range each {
				ids <- g.next()
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] || NodeOf(id) != MaxNode {
			t.Fatalf("id %#x repeated or misplaced", id)
		}
		seen[id] = true
	}
}

func TestClockCounterBounds(t *testing.T) {
	if c := clockCounter(time.Unix(0, 0)); c != 1 {
		t.Errorf("a clock before 2025 gives %d, want 1", c)
	}
	if c := clockCounter(time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC)); c != 1e6 {
		t.Errorf("one second after the base gives %d", c)
	}
}
