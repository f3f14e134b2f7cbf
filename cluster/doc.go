// Package cluster makes several simplerpc servers act as one, over NATS:
// a send to all, a group, a send and a call by net id reach a connection
// whatever node holds it.
//
//	nc, _ := nats.Connect(url)                   // or embedded.Start(ctx) and ns.Connect()
//	node, _ := cluster.New(router, nc, 1)        // node number 1 of up to 1023
//	_ = node.Start(ctx, "0.0.0.0:30000")
//	node.SendAll(1, msg)                         // every connection of every node
//	node.Call(ctx, id, 7, req, &resp)            // id may be held by any node
//
// A [Node] wraps an engine.Server it makes itself, so that its net ids
// name the node that holds each connection (see [NodeOf]): a send by id
// goes straight to that node's NATS subject, with no lookup. The node's
// own connections are served by the engine directly, never through NATS.
// Groups are the engines' groups, one per node, and counts and member
// lists ask every node that is up. Nodes announce themselves with
// heartbeats; one silent for the heartbeat timeout is taken for down,
// and its connections leave presence and groups with it.
//
// # Concurrency
//
// Every method is safe for concurrent use and none waits on NATS, except
// those that take a context (calls, counts, lookups) and Start and
// Shutdown. Cross-node messages are queued, bounded, to one publisher
// goroutine; messages from NATS are handled in order by one dispatcher
// goroutine, which hands frames to the engine's event loops without
// waiting; a control goroutine sends heartbeats, expires silent nodes and
// runs the node callbacks. An event loop is never blocked by a slow NATS
// or a slow node.
//
// # Trust
//
// A node acts on what comes on its NATS subjects, after checks that no
// client of the bus can get past: no frame with a protocol opcode
// (negative) crosses nodes ([ErrProtocolOpcode]), and malformed or
// implausible messages are counted and dropped. Anyone who may publish on
// the subjects can still forge any node's application traffic and
// presence, so NATS's own authentication decides who may: package
// embedded requires a token or nkeys; an external NATS, its configuration
// (docs/CLUSTER.md §7, "Who may use the bus").
//
// docs/CLUSTER.md gives the semantics, the subjects and messages on the
// wire, the timeouts and the failure modes; docs/PROTOCOL.md the protocol
// between a node and its connections, which the cluster does not change.
package cluster
