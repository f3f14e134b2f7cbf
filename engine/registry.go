// This file holds the map from net ids to open connections.

package engine

import (
	"math/bits"
	"sync"

	"github.com/simplerpc/simplerpc/handler"
)

// registry maps net ids to open connections for sends by id. It is sharded
// by id so that connects, disconnects and lookups on different loops rarely
// meet on one lock. Each shard is a table of connection pointers keyed by
// the id each connection holds: 8 bytes a slot, at most three quarters
// full, about 14 bytes a connection, where a map[uint64]*conn cost about
// 32 at 10,000 idle connections and a sync.Map entry several times that
// (TestRegistrySlotCost).
type registry struct {
	shards [64]registryShard
}

// registryShard is an open-addressing table with linear probing. A
// connection's id does not change while it is in the table.
type registryShard struct {
	mu    sync.RWMutex // guards slots, n
	slots []*conn      // nil is a free slot; len is 0 or a power of two
	n     int          // connections in slots
}

func (r *registry) shard(id uint64) *registryShard { return &r.shards[id%uint64(len(r.shards))] }

// home is id's first slot in a table of size slots, a power of two
// (Fibonacci hashing: the ids of a shard are often consecutive multiples
// of 64).
func home(id uint64, size int) int {
	return int((id / 64 * 0x9E3779B97F4A7C15) >> (64 - bits.TrailingZeros(uint(size))))
}

func (r *registry) load(id uint64) *conn {
	s := r.shard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i, ok := s.find(id); ok {
		return s.slots[i]
	}
	return nil
}

// store adds c under its id, in place of any connection with the same id.
func (r *registry) store(c *conn) {
	s := r.shard(c.id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.find(c.id); ok {
		s.slots[i] = c
		return
	}
	if 4*(s.n+1) > 3*len(s.slots) {
		s.grow()
	}
	s.put(c)
}

func (r *registry) remove(id uint64) {
	s := r.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.find(id)
	if !ok {
		return
	}
	// Backward-shift deletion: move up the entries of the run after i
	// that may not sit past the hole, so that every lookup still finds its
	// entry before the first free slot.
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != nil; j = (j + 1) & mask {
		h := home(s.slots[j].id, len(s.slots))
		if (j-h)&mask >= (j-i)&mask { // h is not in (i, j]: the entry may move to i
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = nil
	s.n--
}

// find returns the slot holding id. With s.mu held.
func (s *registryShard) find(id uint64) (int, bool) {
	if s.n == 0 {
		return 0, false
	}
	mask := len(s.slots) - 1
	for i := home(id, len(s.slots)); ; i = (i + 1) & mask {
		switch c := s.slots[i]; {
		case c == nil:
			return 0, false
		case c.id == id:
			return i, true
		}
	}
}

// put adds c, whose id is not in s, to a table with room. With s.mu held.
func (s *registryShard) put(c *conn) {
	mask := len(s.slots) - 1
	i := home(c.id, len(s.slots))
	for s.slots[i] != nil {
		i = (i + 1) & mask
	}
	s.slots[i] = c
	s.n++
}

// grow doubles the table (8 slots at first). With s.mu held.
func (s *registryShard) grow() {
	old := s.slots
	s.slots, s.n = make([]*conn, max(2*len(old), 8)), 0
	for _, c := range old {
		if c != nil {
			s.put(c)
		}
	}
}

// all returns every connection, as the handler sees it.
func (r *registry) all() []handler.Conn {
	var out []handler.Conn
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, c := range s.slots {
			if c != nil {
				out = append(out, c)
			}
		}
		s.mu.RUnlock()
	}
	return out
}
