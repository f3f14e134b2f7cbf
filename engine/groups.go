// This file holds groups (rooms): named sets of a server's connections
// that a frame can be sent to at once.

package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// errEmptyGroup is returned for a group with an empty name.
var errEmptyGroup = errors.New("engine: empty group name")

// Group is a named set of a server's connections, a room: what joins it
// and what is sent to it. A connection may be in many groups; it leaves
// them all when it closes. A Group is a name, cheap to make: groups with
// no member do not exist on the server. The empty name is invalid: every
// method fails (or reports nothing) for it.
//
// With a [Backend], a group of the same name on each server is one group:
// Send and SendExcept reach its members on every server, and LenContext
// and MembersContext count and list them; Join and Leave take this
// server's connections, and Len and Members count and list this server's.
//
// It is safe for concurrent use by multiple goroutines.
type Group struct {
	s    *Server
	name string
}

// Group returns the group with the given name.
func (s *Server) Group(name string) Group { return Group{s: s, name: name} }

// Join adds this server's connection with net id id to the group (a
// connection another server holds joins there). It returns an error
// wrapping [ErrUnknownConn] for an unknown id, [ErrClosed] for a
// connection that is closing, and one for an empty name.
func (g Group) Join(id uint64) error {
	if err := g.join(id); err != nil {
		return fmt.Errorf("engine: join %q: %w", g.name, err)
	}
	return nil
}

func (g Group) join(id uint64) error {
	if g.name == "" {
		return errEmptyGroup
	}
	s := g.s
	c, err := s.lookup(id)
	if err != nil {
		return err
	}
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("net id %d: %w", id, ErrClosed)
	}
	if s.groups == nil {
		s.groups = make(map[string]map[uint64]*conn)
	}
	m := s.groups[g.name]
	if m == nil {
		m = make(map[uint64]*conn)
		s.groups[g.name] = m
	}
	if _, ok := m[id]; !ok {
		m[id] = c
		x := c.extra()
		x.groups = append(x.groups, g.name)
	}
	return nil
}

// Leave removes this server's connection with net id id from the group.
// Leaving a group one is not in does nothing.
func (g Group) Leave(id uint64) {
	s := g.s
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	m := s.groups[g.name]
	c, ok := m[id]
	if !ok {
		return
	}
	delete(m, id)
	if len(m) == 0 {
		delete(s.groups, g.name)
	}
	x := c.extra() // set: Join put c in the group
	x.groups = slices.DeleteFunc(x.groups, func(n string) bool { return n == g.name })
}

// Len returns the number of this server's connections in the group
// ([Group.LenContext] counts every server's).
func (g Group) Len() int {
	g.s.groupsMu.RLock()
	defer g.s.groupsMu.RUnlock()
	return len(g.s.groups[g.name])
}

// Members returns the group's connections on this server, in no
// particular order (a snapshot, as [Server.Conns]; [Group.MembersContext]
// lists every server's).
func (g Group) Members() []handler.Conn {
	g.s.groupsMu.RLock()
	defer g.s.groupsMu.RUnlock()
	m := g.s.groups[g.name]
	out := make([]handler.Conn, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	return out
}

// Send sends v on opcode op to every member of the group. The JSON is
// encoded once. A group with no member sends nothing. With a [Backend],
// the object is then published once for the members on the other servers,
// as [Server.SendAll] does.
func (g Group) Send(op codec.Opcode, v any) error { return g.SendExcept(0, op, v) }

// SendExcept sends v to every member of the group but the connection with
// net id except (0: none).
func (g Group) SendExcept(except uint64, op codec.Opcode, v any) error {
	if g.name == "" {
		return fmt.Errorf("engine: send opcode %d to group: %w", op, errEmptyGroup)
	}
	return g.s.sendShared(op, v, except, g.name)
}

// Groups returns the names of the groups this server's connection with net
// id id is in, or nil for an id this server does not hold.
func (s *Server) Groups(id uint64) []string {
	c := s.conns.load(id)
	if c == nil {
		return nil
	}
	s.groupsMu.RLock()
	defer s.groupsMu.RUnlock()
	if x := c.x.Load(); x != nil {
		return slices.Clone(x.groups)
	}
	return nil
}

// groupMembers returns the group's members by loop.
func (s *Server) groupMembers(group string) map[*loop][]*conn {
	s.groupsMu.RLock()
	defer s.groupsMu.RUnlock()
	out := make(map[*loop][]*conn)
	for _, c := range s.groups[group] {
		out[c.loop] = append(out[c.loop], c)
	}
	return out
}

// leaveGroups ends a closed connection's memberships.
func (s *Server) leaveGroups(c *conn) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	// Under the lock: a Join that passed its closed check before c closed
	// may still be allocating x.
	x := c.x.Load()
	if x == nil {
		return // never joined a group
	}
	for _, g := range x.groups {
		if m := s.groups[g]; m != nil {
			delete(m, c.id)
			if len(m) == 0 {
				delete(s.groups, g)
			}
		}
	}
	x.groups = nil
}
