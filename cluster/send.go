package cluster

// This file holds what the server hands the node to send to the other
// nodes: its publications (sends to all and to groups), and sends by net
// id, confirmed or not.

import (
	"context"
	"errors"
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
)

// Publish implements engine.Backend: it queues a send to all (or to a
// group's members) for the other nodes, one message on the bus whatever
// the number of nodes and connections, without waiting. The server's own
// connections have it already. With no other node up it does nothing.
// It fails with [ErrProtocolOpcode] for a protocol opcode (negative),
// [ErrBusDown] while the NATS connection is down, [ErrBusFull] past
// [WithMaxQueued].
func (n *Node) Publish(p engine.Publication) error {
	to := "all"
	k := kindAll
	if p.Group != "" {
		to, k = fmt.Sprintf("group %q", p.Group), kindGroup
	}
	fail := func(err error) error {
		return fmt.Errorf("cluster: send opcode %d to %s on the other nodes: %w", p.Op, to, err)
	}
	switch {
	case p.Op < 0:
		return fail(ErrProtocolOpcode)
	case len(p.Group) > 1<<16-1:
		return fail(errors.New("group name longer than 65535 bytes"))
	}
	if n.remoteCnt.Load() == 0 && n.busUp.Load() && n.running() == nil {
		return nil // nobody else to tell
	}
	if err := n.enqueue(outMsg{subject: n.subj.all, data: appendFrame(nil, k, n.node, n.epoch, p.Except, p.Op, p.Group, p.Obj)}); err != nil {
		return fail(err)
	}
	return nil
}

// sendRemote queues a frame for the connection with net id id, held by
// another node.
func (n *Node) sendRemote(id uint64, op codec.Opcode, obj []byte) error {
	if op < 0 {
		return ErrProtocolOpcode
	}
	p, err := n.route(id)
	if err != nil {
		return err
	}
	return n.enqueue(outMsg{subject: p.subject, data: appendFrame(nil, kindSend, n.node, n.epoch, id, op, "", obj)})
}

// closeRemote queues a close of the connection with net id id, held by
// another node.
func (n *Node) closeRemote(id uint64) error {
	p, err := n.route(id)
	if err != nil {
		return err
	}
	return n.enqueue(outMsg{subject: p.subject, data: appendClose(nil, n.node, n.epoch, id)})
}

// SendConfirm sends v on opcode op to the connection with net id id,
// whatever node holds it, as the server's Send does, and reports whether
// that connection took the frame: done runs once, with nil when the
// engine of the node that holds the connection queued the frame to it,
// or with what a call would return for the route: an error wrapping
// engine.ErrUnknownConn for a connection that is not open there (at
// once, one round trip), also wrapping [ErrNodeDown] when its node goes
// down meanwhile; the engine's error there; ctx's error when ctx ends
// first (without a deadline, [WithCallTimeout] bounds the wait). The
// frame keeps its order among the node's sends to that connection.
//
// It never blocks: when the frame cannot be sent at all (a local
// connection that is gone, a node not up, [ErrBusDown], [ErrBusFull]), it
// returns the error and done never runs. For a connection of this node
// done runs before SendConfirm returns; otherwise on a goroutine of the
// node, as a remote connection's CallAsync does, so it must not block.
// It is safe from any goroutine, event loops included.
func (n *Node) SendConfirm(ctx context.Context, id uint64, op codec.Opcode, v any, done func(error)) error {
	fail := func(err error) error {
		return fmt.Errorf("cluster: send opcode %d to net id %d: %w", op, id, err)
	}
	if done == nil {
		return fail(errors.New("nil done callback"))
	}
	if n.host == nil {
		return fail(errNotStarted)
	}
	obj, err := codec.Marshal(v)
	if err != nil {
		return fail(err)
	}
	if NodeOf(id) == n.node {
		if err := n.host.Send(id, op, obj); err != nil {
			return fail(err)
		}
		done(nil)
		return nil
	}
	if op < 0 {
		return fail(ErrProtocolOpcode)
	}
	if err := n.askConn(ctx, id, op, "send", obj, false, false, nil, done); err != nil {
		return fail(err)
	}
	return nil
}
