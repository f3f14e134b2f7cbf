// Package cluster makes several simplerpc servers act as one, over NATS:
// it is the server's backend (engine.Backend), so that the server's own
// methods reach the connections of every node.
//
//	nc, _ := nats.Connect(url)              // or embedded.Start(ctx) and ns.Connect()
//	node, _ := cluster.New(nc, 1)           // node number 1 of up to 1023
//	srv, _ := engine.NewServer(router, engine.WithBackend(node))
//	_ = srv.Start(ctx, "0.0.0.0:30000")     // joins the cluster, then listens
//
// and in a handler, on any node, as on a server alone:
//
//	s := engine.ServerOf(c)
//	s.SendAll(1, msg)                       // every connection of every node
//	s.Group("room").Send(2, msg)            // the room's members on every node
//	s.Call(ctx, id, 7, req, &resp)          // id may be held by any node
//	ids, _ := s.ConnsOfContext(ctx, "alice") // authenticated on any node
//
// The node gives out the server's net ids, so that each names the node
// that holds its connection (see [NodeOf]): a send by id goes straight to
// that node's NATS subject, with no lookup. The server serves its own
// connections directly, never through NATS. Groups are the servers'
// groups, one per node; counts and lists ask every node that is up.
// Nodes announce themselves with heartbeats; one silent for the heartbeat
// timeout is taken for down, and its connections leave presence and
// groups with it. docs/CLUSTER.md has the table of which methods are
// cluster-wide and what each costs.
//
// # Concurrency
//
// Every method is safe for concurrent use and none waits on NATS, except
// those that take a context (calls, counts, lookups), Start and Stop.
// Cross-node messages are queued, bounded, to one publisher goroutine;
// messages from NATS are handled in order by one dispatcher goroutine,
// which hands frames to the server's event loops without waiting; a
// control goroutine sends heartbeats, expires silent nodes and runs the
// node callbacks. An event loop is never blocked by a slow NATS or a slow
// node.
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
