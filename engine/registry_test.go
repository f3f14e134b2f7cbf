// This file tests the registry of connections by net id: against a map
// through random stores, loads and removes, and for what it costs a
// connection.

package engine

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestRegistry runs random operations on a registry and on a map side by
// side, with ids that crowd a few shards and slots (consecutive, multiples
// of 64, and random), and checks that every lookup and every listing
// agree, after each removal's shifts too.
func TestRegistry(t *testing.T) {
	t.Parallel()
	for _, ids := range []struct {
		name string
		id   func(r *rand.Rand) uint64
	}{
		{"consecutive", func(r *rand.Rand) uint64 { return 1 + r.Uint64N(3000) }},
		{"one shard", func(r *rand.Rand) uint64 { return 64 * r.Uint64N(3000) }},
		{"random", func(r *rand.Rand) uint64 { return r.Uint64() }},
	} {
		t.Run(ids.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(1, 2))
			var reg registry
			model := map[uint64]*conn{}
			var known []uint64
			for op := range 200_000 {
				var id uint64
				if len(known) > 0 && r.IntN(2) == 0 {
					id = known[r.IntN(len(known))]
				} else {
					id = ids.id(r)
					known = append(known, id)
				}
				switch r.IntN(3) {
				case 0:
					c := &conn{id: id}
					reg.store(c)
					model[id] = c
				case 1:
					reg.remove(id)
					delete(model, id)
				}
				if got, want := reg.load(id), model[id]; got != want {
					t.Fatalf("op %d: load(%d) = %p, want %p", op, id, got, want)
				}
				if op%20_000 == 0 {
					checkRegistry(t, &reg, model)
				}
			}
			checkRegistry(t, &reg, model)
			for id := range model {
				reg.remove(id)
			}
			if n := len(reg.all()); n != 0 {
				t.Fatalf("%d connections left after removing them all", n)
			}
		})
	}
}

func checkRegistry(t *testing.T, reg *registry, model map[uint64]*conn) {
	t.Helper()
	all := reg.all()
	if len(all) != len(model) {
		t.Fatalf("all() has %d connections, want %d", len(all), len(model))
	}
	for _, hc := range all {
		c := hc.(*conn)
		if model[c.id] != c {
			t.Fatalf("all() has conn %d (%p), want %p", c.id, c, model[c.id])
		}
	}
	for id, c := range model {
		if got := reg.load(id); got != c {
			t.Fatalf("load(%d) = %p, want %p", id, got, c)
		}
	}
}

// TestRegistrySlotCost pins what the registry costs a connection at
// 10,000 and 19,000 connections with a server's ids: at most 16 bytes of
// table each, where a map slot cost about 32.
func TestRegistrySlotCost(t *testing.T) {
	t.Parallel()
	var reg registry
	conns := make([]conn, 19_000)
	for i := range conns {
		conns[i].id = uint64(i + 1)
		reg.store(&conns[i])
		if n := i + 1; n == 10_000 || n == 19_000 {
			slots := 0
			for j := range reg.shards {
				slots += len(reg.shards[j].slots)
			}
			if per := slots * int(unsafe.Sizeof((*conn)(nil))) / n; per > 16 {
				t.Errorf("%d connections: the registry's tables hold %d slots, %d bytes a connection, want at most 16", n, slots, per)
			}
		}
	}
}
