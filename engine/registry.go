// This file holds the map from net ids to open connections.

package engine

import (
	"sync"

	"github.com/simplerpc/simplerpc/handler"
)

// registry maps net ids to open connections for sends by id. It is sharded
// by id so that connects, disconnects and lookups on different loops rarely
// meet on one lock, and it costs a plain map slot per connection (a
// sync.Map entry costs several times that, which shows at 19,000 idle
// connections).
type registry struct {
	shards [64]registryShard
}

type registryShard struct {
	mu sync.RWMutex // guards m
	m  map[uint64]*conn
}

func (r *registry) shard(id uint64) *registryShard { return &r.shards[id%uint64(len(r.shards))] }

func (r *registry) load(id uint64) *conn {
	s := r.shard(id)
	s.mu.RLock()
	c := s.m[id]
	s.mu.RUnlock()
	return c
}

func (r *registry) store(c *conn) {
	s := r.shard(c.id)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[uint64]*conn)
	}
	s.m[c.id] = c
	s.mu.Unlock()
}

func (r *registry) remove(id uint64) {
	s := r.shard(id)
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// all returns every connection, as the handler sees it.
func (r *registry) all() []handler.Conn {
	var out []handler.Conn
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, c := range s.m {
			out = append(out, c)
		}
		s.mu.RUnlock()
	}
	return out
}
