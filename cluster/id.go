package cluster

import (
	"sync/atomic"
	"time"
)

// Net id layout (docs/CLUSTER.md, "Net ids"): the node number in the high
// bits, then a counter that starts, at each boot, at the boot time in
// microseconds since idBaseMicro, and grows by at least one per connection
// and with the clock. A restarted node thus starts above every id its
// earlier boots gave out, so ids are never reused; the boot's first counter
// value is its epoch.
const (
	nodeBits    = 10
	counterBits = 64 - nodeBits
	counterMask = 1<<counterBits - 1

	// MaxNode is the largest node number; node numbers are 1 to MaxNode.
	MaxNode = 1<<nodeBits - 1

	idBaseMicro = 1735689600 * 1e6 // 2025-01-01T00:00:00Z
)

// NodeOf returns the number of the node that holds the connection with
// net id id, as a node of this package gave it out: no lookup is needed.
// It returns 0 for an id no node gave out, such as 0.
func NodeOf(id uint64) int { return int(id >> counterBits) }

// counterOf returns the counter part of a net id.
func counterOf(id uint64) uint64 { return id & counterMask }

// idGen gives out the net ids of one node's boot. It is safe for
// concurrent use by multiple goroutines.
type idGen struct {
	high  uint64 // node << counterBits
	epoch uint64 // the boot's first counter value
	last  atomic.Uint64
	now   func() time.Time
}

func newIDGen(node int, now func() time.Time) *idGen {
	g := &idGen{high: uint64(node) << counterBits, now: now}
	g.epoch = clockCounter(now())
	g.last.Store(g.epoch - 1)
	return g
}

// clockCounter is t as a counter value; it is at least 1.
func clockCounter(t time.Time) uint64 {
	us := t.UnixMicro() - idBaseMicro
	if us < 1 {
		us = 1
	}
	return uint64(us) & counterMask
}

// next returns a new net id, never 0 and never one it returned before.
// It runs on an event loop for every accepted connection (see
// engine.WithNetIDs): one clock read and one compare-and-swap.
func (g *idGen) next() uint64 {
	for {
		last := g.last.Load()
		c := clockCounter(g.now())
		if c <= last {
			c = last + 1 // a burst, or a clock stepped back: keep counting
		}
		if g.last.CompareAndSwap(last, c) {
			return g.high | c&counterMask
		}
	}
}
