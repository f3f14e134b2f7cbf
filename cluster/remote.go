package cluster

// This file holds the handle of a connection another node holds, which
// the server's Conn, Send and Call return or use for a net id that is not
// its own: its sends and calls go over the bus to that node.

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Conn implements engine.Backend: it returns a handle for the connection
// with net id id, held by another node, when that node is up and id is
// from its current boot, or when the NATS connection is down and the node
// cannot tell (the handle's sends and calls then fail with [ErrBusDown]).
// Otherwise it returns why there is none, wrapping engine.ErrUnknownConn
// (and [ErrNodeDown] for a node that is not up), which the server's Send
// and Call by id return; its Conn reports false. It does not wait, so the
// handle does not say that the connection is still open: a send to a
// connection that closed is dropped on its node and counted there
// (Stats.UnknownConn); a call fails with engine.ErrUnknownConn after one
// round trip.
//
// The handle is a handler.Conn: Send and SendRaw queue the frame for the
// bus without waiting; Call and CallAsync go to the node that holds the
// connection, which calls it and sends the outcome back (see
// [remoteConn.Call]). Value is always nil and SetValue does nothing: a
// connection's value lives on its node. Close asks its node to close it.
// RemoteAddr is "node N"; Context ends when that node goes down or this
// one shuts down.
func (n *Node) Conn(id uint64) (handler.Conn, error) {
	node := NodeOf(id)
	if node == n.node {
		return nil, fmt.Errorf("net id %d: %w", id, engine.ErrUnknownConn) // the server's own, or gone
	}
	p := n.peerOf(node)
	switch {
	case p != nil && counterOf(id) >= p.epoch:
	case !n.busUp.Load() && plausibleID(id):
		// Cut off from the bus, the node cannot tell: the handle's sends
		// and calls fail with ErrBusDown.
		p = nil
	case p != nil:
		return nil, fmt.Errorf("net id %d is from an earlier boot of node %d: %w", id, node, engine.ErrUnknownConn)
	case !plausibleID(id):
		return nil, fmt.Errorf("net id %d: %w", id, engine.ErrUnknownConn)
	default:
		return nil, fmt.Errorf("node %d: %w: %w", node, ErrNodeDown, engine.ErrUnknownConn)
	}
	// This node may have stopped meanwhile: the handle's sends and calls
	// say so.
	return &remoteConn{n: n, id: id, p: p}, nil
}

// remoteConn is a connection another node holds. It is safe for
// concurrent use by multiple goroutines.
type remoteConn struct {
	n  *Node
	id uint64
	p  *peer // nil while the bus is down and the node is not known
}

func (c *remoteConn) ID() uint64 { return c.id }

// Send encodes v and queues it for the node that holds the connection.
func (c *remoteConn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = c.n.sendRemote(c.id, op, obj)
	}
	if err != nil {
		return fmt.Errorf("cluster: send opcode %d to net id %d: %w", op, c.id, err)
	}
	return nil
}

// SendRaw validates and copies obj and queues it as Send does.
func (c *remoteConn) SendRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err == nil {
		err = c.n.sendRemote(c.id, op, obj)
	}
	if err != nil {
		return fmt.Errorf("cluster: send opcode %d to net id %d: %w", op, c.id, err)
	}
	return nil
}

// Call sends a request to the connection and waits for the reply, as
// CallAsync does. It blocks its caller: from a callback on an event loop,
// use CallAsync. Since it waits anyway, it hands the request to NATS
// itself when nothing is queued before it.
func (c *remoteConn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	ch := make(chan error, 1)
	if err := c.callAsync(ctx, op, req, resp, true, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// CallAsync sends a request to the node that holds the connection, which
// calls it, and runs done once with the outcome: nil once the reply is
// decoded into resp; the remote handler's failure, matched by errors.As
// and handler.ReasonOf as on one node; an error wrapping
// engine.ErrUnknownConn for a connection that is gone there (also
// wrapping [ErrNodeDown] when its node goes down meanwhile); ctx's error
// (without a deadline, [WithCallTimeout] bounds the call; the node that
// holds the connection gets the time left); [ErrBusDown], [ErrBusFull],
// or the engine's errors there (engine.ErrClosed, engine.ErrOutboundFull,
// ...), which errors.Is matches as there. done runs on a goroutine of the
// node, so it must not block. It never blocks: when the request cannot
// be queued it returns the error and done never runs.
func (c *remoteConn) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	return c.callAsync(ctx, op, req, resp, false, done)
}

func (c *remoteConn) callAsync(ctx context.Context, op codec.Opcode, req, resp any, inline bool, done func(error)) error {
	fail := func(err error) error {
		return fmt.Errorf("cluster: call opcode %d to net id %d: %w", op, c.id, err)
	}
	if done == nil {
		return fail(errors.New("nil done callback"))
	}
	if op < 0 {
		return fail(ErrProtocolOpcode)
	}
	data := []byte("{}")
	if req != nil {
		var err error
		if data, err = codec.Marshal(req); err != nil {
			return fail(err)
		}
	}
	if err := c.n.askConn(ctx, c.id, op, "call", data, true, inline, resp, done); err != nil {
		return fail(err)
	}
	return nil
}

// Close asks the node that holds the connection to close it, without
// waiting: the frames sent to it from this node before are written first,
// and its disconnect callback runs on its node. A connection that closed
// meanwhile is not known here: the close is dropped there and counted
// (Stats.UnknownConn). It fails with [ErrBusDown] or [ErrBusFull].
func (c *remoteConn) Close() error {
	if err := c.n.closeRemote(c.id); err != nil {
		return fmt.Errorf("cluster: close net id %d: %w", c.id, err)
	}
	return nil
}

// Value is nil: a connection's value lives on its node.
func (c *remoteConn) Value() any { return nil }

// SetValue does nothing: a connection's value lives on its node.
func (c *remoteConn) SetValue(any) {}

// RemoteAddr names the node that holds the connection: "node N".
func (c *remoteConn) RemoteAddr() string { return "node " + strconv.Itoa(NodeOf(c.id)) }

// Context ends when the node that holds the connection goes down, or this
// node shuts down, with the reason as its cause.
func (c *remoteConn) Context() context.Context {
	if c.p == nil {
		return c.n.life
	}
	return c.p.ctx
}
