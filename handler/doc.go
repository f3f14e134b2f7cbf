// Package handler routes decoded frames to application callbacks: what the
// original Python simplerpc's MessageHandler, ForwardHandler and exceptions
// did, made lock-free and type-safe.
//
//	r := handler.NewRouter()
//	r.On(0, func(c handler.Conn, data []byte) error { // raw: data is borrowed
//		return c.SendRaw(0, data)
//	})
//	handler.Handle(r, 1, func(c handler.Conn, m Move) error { // typed
//		return nil
//	})
//
// A callback that returns one of the failure types ([ArgumentTypeError],
// [ArgumentValueError], [ArgumentMissing], [MalformedPayload], [*Error], or
// any error with a Reason method) makes the engine send a -1 failure frame
// to the sender, or a -5 reply failure for a call (docs/PROTOCOL.md §2.1,
// §5.3), with that reason and the error's own message. Any other error,
// and a panic, is logged and answered with the reason [ReasonInternal] and
// the message "internal error": its text stays local, unless the router is
// made with [WithErrorText].
//
// Failure frames the peer sends reach the callbacks registered for
// [codec.OpFailure] (-1), where the original's client hands them to its
// `on_fail` callback: with
// [Router.On] for the raw object, or [Handle] with [Error] for its reason
// and message. Their errors are logged, never sent back, and catch-alls do
// not see failure frames.
//
// # Middleware
//
// [Router.Use] adds middleware around the frames and calls the router
// dispatches (tracing, audit logs, metrics, per-opcode authorisation): it
// sees the opcode, the connection, the data and the outcome. The chain is
// built when the registrations change, so a router without middleware
// dispatches as before, and one with it allocates nothing of its own.
//
// # Concurrency
//
// Dispatch reads an immutable table through an atomic pointer and never
// takes a lock; registration copies the table under a mutex. A [Router] may
// be changed while connections are being served. Callbacks run wherever the
// engine runs them (by default on its event loop: they must not block).
//
// The package does not import the engine: [Conn] is the connection as a
// callback sees it, implemented by the engine.
package handler
