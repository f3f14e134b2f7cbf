// Package engine runs simplerpc servers and clients on gnet v2 event loops:
// what the original Python simplerpc's Server, Connection and Client did,
// byte-compatible with it (docs/PROTOCOL.md), for many connections on
// little hardware.
//
//	r := handler.NewRouter()
//	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
//	srv, _ := engine.NewServer(r, engine.WithMessageSize(256))
//	go srv.Serve(ctx, "127.0.0.1:30000")
//
//	cl, _ := engine.Dial(ctx, "127.0.0.1:30000", handler.NewRouter())
//	cl.Send(0, map[string]any{"some_data": 123})
//
// # Event loops and callbacks
//
// A [Server] runs one gnet event loop by default ([WithEventLoops] for
// more) plus an accept goroutine of its own per listener (running out of
// descriptors pauses accepting rather than stopping the loop); there is no
// goroutine per connection. Inbound frames are decoded straight from gnet's buffer and
// dispatched on the loop, so callbacks must not block: the data they get is
// borrowed until they return. [WithWorkerPool] runs callbacks on a bounded
// pool of goroutines instead, keeping each connection's frames in order.
//
// # Sending
//
// Every send (Send, SendRaw, SendAll, groups, calls) is safe from any
// goroutine. It is queued to the connection's loop, which writes it: at
// the end of the current round of callbacks when the send comes from the
// loop itself (so all replies to one read leave in one write), or in one
// task per burst otherwise. Frames to one connection keep the order of the
// sends. A send-to-all encodes its JSON once and is one task per loop.
//
// # Clients
//
// A [Dialer] holds any number of client connections on its own event loops;
// [Dial] is the one-connection shortcut. Dial returns a ready client (the
// frame size learned from the server's first frame, credentials
// acknowledged) or the reason it is not; a client holds what it sends
// while it reconnects. A client's connections are of the one kind a
// server's are: its callbacks get the one they run for (a new one on each
// reconnection), and [Client.Conn] returns the current one. A call handler that must wait for something
// returns a [handler.Pending] and answers later, from any goroutine.
//
// # TLS
//
// [WithTLS] makes a server's or a dialer's connections TLS, with the
// standard library's crypto/tls and a [crypto/tls.Config] of the
// caller's; an address may then say tls://host:port. An established TLS
// connection runs on its event loop like a plain one, with no goroutine of
// its own: the loop feeds crypto/tls the bytes it reads and writes the
// records it makes. Each handshake runs on a short-lived goroutine, bounded by
// [WithHandshakeTimeout] and [WithMaxHandshakes]. [TLSState] gives a
// handler the peer's certificates. See docs/TLS.md.
//
// # Examples
//
// The runnable examples (example_test.go, example_original_test.go; `go
// test -run Example -v ./engine` runs them, pkg.go.dev shows them under the
// names they document): ExampleServer (the original's messenger),
// ExampleClient_Call (a typed call and its typed failure),
// ExampleClient_Conn (a client's connection and its values),
// ExampleServer_SendAll (rpc_all), ExampleServer_Conns
// (server.connections), ExampleServer_Group (rooms), Example_failure (a
// failure frame reaching the sender's -1 callback), Example_callAsync (a
// callback calling its peer without blocking) and Example_perConnection
// (a connection's own handler and disconnect callback).
//
// See docs/DESIGN.md for which goroutine runs what, docs/OPERATIONS.md for
// limits, slow consumers, heartbeats and reconnects.
package engine
