package cluster

// This file holds sends by net id and to everyone, and the cluster-wide
// count and lookup of connections.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/simplerpc/simplerpc/codec"
)

// Send sends v on opcode op to the connection with net id id, whatever
// node holds it. For a connection of this node it is engine.Server.Send.
// For another node's it encodes v and queues it for NATS, without
// waiting; it fails with an error wrapping engine.ErrUnknownConn (and
// [ErrNodeDown]) when the node that gave out id is not up, or id is from
// an earlier boot of it, and with [ErrBusDown] or [ErrBusFull]. A
// connection that closed meanwhile is not known here: the frame is dropped
// there and counted (Stats.UnknownConn); use [Node.Call] to know. Frames
// from one node to one connection arrive in the order of the sends. A
// protocol opcode (negative) goes only to a connection of this node;
// another node's fails with [ErrProtocolOpcode].
func (n *Node) Send(id uint64, op codec.Opcode, v any) error {
	if NodeOf(id) == n.node {
		return n.srv.Send(id, op, v)
	}
	if op < 0 {
		return fmt.Errorf("cluster: send opcode %d to net id %d: %w", op, id, ErrProtocolOpcode)
	}
	obj, err := codec.Marshal(v)
	if err == nil {
		err = n.sendRemote(id, op, obj)
	}
	if err != nil {
		return fmt.Errorf("cluster: send opcode %d to net id %d: %w", op, id, err)
	}
	return nil
}

func (n *Node) sendRemote(id uint64, op codec.Opcode, obj []byte) error {
	p, err := n.route(id)
	if err != nil {
		return err
	}
	return n.enqueue(outMsg{subject: p.subject, data: appendFrame(nil, kindSend, n.node, n.epoch, id, op, "", obj)})
}

// SendConfirm sends v on opcode op to the connection with net id id,
// whatever node holds it, as [Node.Send] does, and reports whether that
// connection took the frame: done runs once, with nil when the engine of
// the node that holds the connection queued the frame to it, or with what
// [Node.Call] would return for the route: an error wrapping
// engine.ErrUnknownConn for a connection that is not open there (at
// once, one round trip), also wrapping [ErrNodeDown] when its node is
// down or goes down meanwhile; the engine's error there; ctx's error when
// ctx ends first (without a deadline, [WithCallTimeout] bounds the wait).
// The frame keeps its order among the node's sends to that connection.
//
// It never blocks: when the frame cannot be sent at all (a local
// connection that is gone, a node known down, [ErrBusDown],
// [ErrBusFull]), it returns the error and done never runs. For a
// connection of this node done runs before SendConfirm returns;
// otherwise on a goroutine of the node, as for [Node.CallAsync], so it
// must not block. It is safe from any goroutine, event loops included.
func (n *Node) SendConfirm(ctx context.Context, id uint64, op codec.Opcode, v any, done func(error)) error {
	fail := func(err error) error {
		return fmt.Errorf("cluster: send opcode %d to net id %d: %w", op, id, err)
	}
	if done == nil {
		return fail(errors.New("nil done callback"))
	}
	if NodeOf(id) == n.node {
		if err := n.srv.Send(id, op, v); err != nil {
			return fail(err)
		}
		done(nil)
		return nil
	}
	if op < 0 {
		return fail(ErrProtocolOpcode)
	}
	obj, err := codec.Marshal(v)
	if err != nil {
		return fail(err)
	}
	if err := n.askConn(ctx, id, op, "send", obj, false, nil, done); err != nil {
		return fail(err)
	}
	return nil
}

// SendAll sends v on opcode op to every open connection of every node that
// is up. The JSON is encoded once, and each node hands it to its engine
// once, which writes it to all its connections. This node's connections
// get it from the engine directly; with no other node up, it is
// engine.Server.SendAll. If the NATS connection is down, this node's
// connections still get it and the error wraps [ErrBusDown]. A protocol
// opcode (negative) is refused with [ErrProtocolOpcode]: nobody gets it.
func (n *Node) SendAll(op codec.Opcode, v any) error {
	return n.sendShared(op, v, nil, 0, "", "all")
}

// SendAllExcept is [Node.SendAll] to every connection but the one with net
// id except, whatever node holds it (0: none).
func (n *Node) SendAllExcept(except uint64, op codec.Opcode, v any) error {
	return n.sendShared(op, v, nil, except, "", "all")
}

// SendAllRaw is [Node.SendAll] for an encoded JSON object, obj, which is
// validated and copied, never re-encoded: the way to relay a broadcast as
// it was received.
func (n *Node) SendAllRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err != nil {
		return fmt.Errorf("cluster: send opcode %d to all: %w", op, err)
	}
	return n.sendShared(op, nil, obj, 0, "", "all")
}

// sendShared sends to all, or to a group, from v or from a valid obj.
func (n *Node) sendShared(op codec.Opcode, v any, obj []byte, except uint64, group, to string) error {
	if op < 0 {
		return fmt.Errorf("cluster: send opcode %d to %s: %w", op, to, ErrProtocolOpcode)
	}
	local := func(v any) error {
		switch {
		case group != "":
			return n.srv.Group(group).SendExcept(except, op, v)
		case except == 0 && obj != nil && v == nil:
			return n.srv.SendAllRaw(op, obj)
		default:
			return n.srv.SendAllExcept(except, op, v)
		}
	}
	if obj == nil && n.remoteCnt.Load() == 0 && n.busUp.Load() {
		return local(v) // nobody else to tell: exactly the engine's send
	}
	if obj == nil {
		var err error
		if obj, err = codec.Marshal(v); err != nil {
			return fmt.Errorf("cluster: send opcode %d to %s: %w", op, to, err)
		}
	}
	var lv any = json.RawMessage(obj)
	if except == 0 && group == "" {
		lv = nil // SendAllRaw
	}
	if err := local(lv); err != nil {
		return fmt.Errorf("cluster: send opcode %d to %s: %w", op, to, err)
	}
	if n.remoteCnt.Load() == 0 && n.busUp.Load() {
		return nil
	}
	k := kindAll
	if group != "" {
		k = kindGroup
	}
	if err := n.enqueue(outMsg{subject: n.subj.all, data: appendFrame(nil, k, n.node, n.epoch, except, op, group, obj)}); err != nil {
		return fmt.Errorf("cluster: send opcode %d to %s on the other nodes (this node's connections have it): %w", op, to, err)
	}
	return nil
}

// Len returns the number of open connections across the cluster: this
// node's and those of every node that is up, asked now. It waits for their
// answers within ctx (or [WithCallTimeout]); a node that goes down
// meanwhile counts for none. On error the count covers only the nodes
// that answered.
func (n *Node) Len(ctx context.Context) (int, error) {
	total := n.srv.Len()
	res, err := n.queryAll(ctx, queryLen, "")
	for _, e := range res {
		if c, ok := count(e); ok {
			total += int(c)
		}
	}
	if err != nil {
		return total, fmt.Errorf("cluster: count connections: %w", err)
	}
	return total, nil
}

// Lookup reports whether the connection with net id id is open, asking
// the node that holds it (no other) within ctx. It is false, without
// error, for an id whose node is down or from an earlier boot.
func (n *Node) Lookup(ctx context.Context, id uint64) (bool, error) {
	if NodeOf(id) == n.node {
		_, ok := n.srv.Conn(id)
		return ok && n.holds(id), nil
	}
	p, err := n.route(id)
	if err != nil {
		if err := n.running(); err != nil {
			return false, fmt.Errorf("cluster: look up net id %d: %w", id, err)
		}
		if !n.busUp.Load() {
			return false, fmt.Errorf("cluster: look up net id %d: %w", id, ErrBusDown)
		}
		return false, nil
	}
	ch := make(chan error, 1)
	var found bool
	err = n.ask(ctx, p, kindAnswer, func(dst []byte, _ time.Duration) []byte {
		return appendQuery(dst, n.node, n.epoch, queryLookup, "", id)
	}, func(e *envelope, err error) {
		if err == nil {
			c, ok := count(e)
			if !ok || e.status != statusOK {
				err = fmt.Errorf("node %d: bad answer", p.node)
			}
			found = c == 1
		}
		ch <- err
	})
	if err == nil {
		err = <-ch
	}
	if errors.Is(err, ErrNodeDown) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cluster: look up net id %d: %w", id, err)
	}
	return found, nil
}
