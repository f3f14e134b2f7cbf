package engine

import (
	"fmt"
	"slices"

	"github.com/simplerpc/simplerpc/codec"
)

// Join adds the connection with net id id to the named group (a room). A
// connection may be in many groups; its membership ends when it closes. It
// returns an error wrapping [ErrUnknownConn] for an unknown id.
func (s *Server) Join(group string, id uint64) error {
	c, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: join %q: %w", group, err)
	}
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("engine: join %q: net id %d: %w", group, id, ErrClosed)
	}
	if s.groups == nil {
		s.groups = make(map[string]map[uint64]*conn)
	}
	m := s.groups[group]
	if m == nil {
		m = make(map[uint64]*conn)
		s.groups[group] = m
	}
	if _, ok := m[id]; !ok {
		m[id] = c
		x := c.extra()
		x.groups = append(x.groups, group)
	}
	return nil
}

// Leave removes the connection with net id id from the named group. Leaving
// a group one is not in does nothing.
func (s *Server) Leave(group string, id uint64) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	m := s.groups[group]
	c, ok := m[id]
	if !ok {
		return
	}
	delete(m, id)
	if len(m) == 0 {
		delete(s.groups, group)
	}
	x := c.extra() // set: Join put c in the group
	x.groups = slices.DeleteFunc(x.groups, func(g string) bool { return g == group })
}

// GroupLen returns the number of connections in the named group.
func (s *Server) GroupLen(group string) int {
	s.groupsMu.RLock()
	defer s.groupsMu.RUnlock()
	return len(s.groups[group])
}

// SendGroup sends v on opcode op to every member of the named group. The
// JSON is encoded once. An empty or unknown group sends nothing.
func (s *Server) SendGroup(group string, op codec.Opcode, v any) error {
	if group == "" {
		return fmt.Errorf("engine: send to group: empty group name")
	}
	return s.sendShared(op, v, 0, group)
}

// SendGroupExcept sends v to every member of the group but the connection
// with net id except.
func (s *Server) SendGroupExcept(group string, except uint64, op codec.Opcode, v any) error {
	if group == "" {
		return fmt.Errorf("engine: send to group: empty group name")
	}
	return s.sendShared(op, v, except, group)
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
