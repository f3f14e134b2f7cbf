package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/simplerpc/simplerpc/codec"
)

var errEmptyGroup = errors.New("cluster: empty group name")

// Group is a named set of connections across the cluster, a room: each
// connection joins on the node that holds it (as an engine.Group), and
// sends and counts reach the members on every node. A Group is a name,
// cheap to make. A connection leaves its groups when it closes, and the
// members of a node that goes down leave with it. The empty name is
// invalid: every method fails (or reports nothing) for it.
//
// It is safe for concurrent use by multiple goroutines.
type Group struct {
	n    *Node
	name string
}

// Group returns the group with the given name.
func (n *Node) Group(name string) Group { return Group{n: n, name: name} }

// Name returns the group's name.
func (g Group) Name() string { return g.name }

// Join adds the connection with net id id, which must be one of this
// node's, to the group. It returns an error wrapping [ErrNotLocal] for a
// connection of another node, and the engine's errors (engine.ErrUnknownConn,
// engine.ErrClosed, an empty name).
func (g Group) Join(id uint64) error {
	if NodeOf(id) != g.n.node {
		return fmt.Errorf("cluster: join %q: net id %d: %w", g.name, id, ErrNotLocal)
	}
	return g.n.srv.Group(g.name).Join(id)
}

// Leave removes the connection with net id id, one of this node's, from
// the group. Leaving a group one is not in, or naming another node's
// connection, does nothing.
func (g Group) Leave(id uint64) {
	if NodeOf(id) == g.n.node {
		g.n.srv.Group(g.name).Leave(id)
	}
}

// Send sends v on opcode op to every member of the group on every node
// that is up. The JSON is encoded once; this node's members get it from
// the engine directly. Like [Node.SendAll], it wraps [ErrBusDown] when
// only this node's members could be reached.
func (g Group) Send(op codec.Opcode, v any) error { return g.SendExcept(0, op, v) }

// SendExcept is [Group.Send] to every member but the connection with net
// id except, whatever node holds it (0: none).
func (g Group) SendExcept(except uint64, op codec.Opcode, v any) error {
	if g.name == "" {
		return fmt.Errorf("cluster: send opcode %d to group: %w", op, errEmptyGroup)
	}
	if len(g.name) > 1<<16-1 {
		return fmt.Errorf("cluster: send opcode %d to group: name longer than 65535 bytes", op)
	}
	return g.n.sendShared(op, v, nil, except, g.name, fmt.Sprintf("group %q", g.name))
}

// Len returns the number of members across the cluster, asking every
// node that is up within ctx (or [WithCallTimeout]), as [Node.Len] does.
func (g Group) Len(ctx context.Context) (int, error) {
	if g.name == "" {
		return 0, nil
	}
	total := g.n.srv.Group(g.name).Len()
	res, err := g.n.queryAll(ctx, queryGroupLen, g.name)
	for _, e := range res {
		if c, ok := count(e); ok {
			total += int(c)
		}
	}
	if err != nil {
		return total, fmt.Errorf("cluster: count group %q: %w", g.name, err)
	}
	return total, nil
}

// Members returns the net ids of the members across the cluster, in
// increasing order, asking every node that is up within ctx as [Group.Len]
// does. It is a snapshot: members may join or leave as soon as it returns.
func (g Group) Members(ctx context.Context) ([]uint64, error) {
	if g.name == "" {
		return nil, nil
	}
	var ids []uint64
	for _, c := range g.n.srv.Group(g.name).Members() {
		ids = append(ids, c.ID())
	}
	res, err := g.n.queryAll(ctx, queryMembers, g.name)
	for _, e := range res {
		for b := e.text; len(b) >= 8; b = b[8:] {
			// A node answers for its own connections only.
			if id := binary.BigEndian.Uint64(b); NodeOf(id) == e.node && counterOf(id) >= e.epoch {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	if err != nil {
		return ids, fmt.Errorf("cluster: list group %q: %w", g.name, err)
	}
	return ids, nil
}
