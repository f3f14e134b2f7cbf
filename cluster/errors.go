package cluster

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidOption wraps every invalid value given to [New]; the
	// message names the option.
	ErrInvalidOption = errors.New("cluster: invalid option")
	// ErrBusDown is returned by a cross-node send, call or query while the
	// node's NATS connection is not connected (reconnecting, or closed).
	// Traffic between the node's own connections is not affected.
	ErrBusDown = errors.New("cluster: NATS connection down")
	// ErrBusFull is returned by a cross-node send or call that would put
	// more than the limits of [WithMaxQueued] or [WithMaxPending] in flight.
	// It never waits: the caller may be an event loop.
	ErrBusFull = errors.New("cluster: too much cross-node traffic pending")
	// ErrNodeDown is matched by the errors of sends, calls and queries
	// addressed to a node that is not up (never seen, left, timed out, or
	// restarted), and by the reasons given to the callback of
	// [WithOnNodeDown]. Errors for a net id it held also match
	// engine.ErrUnknownConn.
	ErrNodeDown = errors.New("cluster: node down")
	// ErrNodeTaken fails the start of a node's server when a live node of
	// the cluster already has the node number.
	ErrNodeTaken = errors.New("cluster: node number in use")
	// ErrProtocolOpcode is returned by a send or call that would carry a
	// protocol opcode (negative: docs/PROTOCOL.md) to another node: frames
	// of the protocol never cross the bus, and a node drops one that does.
	// Sends to all and to groups refuse them whatever the nodes up; a send
	// to a connection of this node is the engine's.
	ErrProtocolOpcode = errors.New("cluster: protocol opcode (negative) across nodes")
)

// Reasons a node went down, given to the callback of [WithOnNodeDown] and
// wrapped by the errors of what was pending on it. Each wraps
// [ErrNodeDown].
var (
	// ErrNodeLeft: the node shut down and said goodbye.
	ErrNodeLeft = fmt.Errorf("cluster: node left: %w", ErrNodeDown)
	// ErrHeartbeatTimeout: nothing was heard from the node for the
	// heartbeat timeout (see [WithHeartbeat]).
	ErrHeartbeatTimeout = fmt.Errorf("cluster: heartbeat timeout: %w", ErrNodeDown)
	// ErrNodeRestarted: the node number came back with a new epoch, so
	// every connection of the earlier one is gone.
	ErrNodeRestarted = fmt.Errorf("cluster: node restarted: %w", ErrNodeDown)
	// ErrNoResponders: NATS reported that nothing listens on the node's
	// subject any more, typically because its NATS connection is gone; it
	// is reported before the heartbeat timeout.
	ErrNoResponders = fmt.Errorf("cluster: no responder on the node's subject: %w", ErrNodeDown)
)
