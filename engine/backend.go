// This file holds the backend seam: the interface through which a
// server's sends, lookups and calls reach the connections other servers
// hold (a cluster), and the Host through which a backend, or another of
// the project's own modules, reaches the server's local connections.

package engine

import (
	"context"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Backend carries what a server does beyond its own connections to the
// other servers of a cluster, as centrifuge's broker does: set one with
// [WithBackend], and the server's own methods become cluster-wide
// ([Server.SendAll], [Group.Send], [Server.Send], [Server.Conn],
// [Server.Call], and the ...Context lookups such as
// [Server.ConnsOfContext]). Without one a server is alone: it makes no
// backend call, and its cost is that of a lone server.
//
// The server always delivers to its own connections itself, then hands the
// same publication to the backend for the others: a backend never delivers
// back to the server that published. What arrives from other servers, the
// backend delivers through the [Host] it was attached to.
//
// The module github.com/simplerpc/simplerpc/cluster implements it over
// NATS. Implementations must be safe for concurrent use: the server calls
// them from any goroutine, event loops included, so no method but the
// ones taking a context may wait (on the network, on a lock held across
// I/O, on a full queue).
type Backend interface {
	// Attach is called once, by NewServer, with the host the backend
	// delivers to. An error fails NewServer.
	Attach(h *Host) error
	// Start is called when the server starts serving, before it accepts
	// a connection; an error fails the start.
	Start(ctx context.Context) error
	// Stop is called once when the server shuts down, after its own
	// connections closed; ctx bounds it.
	Stop(ctx context.Context) error
	// NetID returns the net id of a new connection: unique across every
	// server of the backend, never 0.
	NetID() uint64
	// Publish hands a publication to the other servers. It must not wait:
	// a backend that cannot take it returns an error (the server's own
	// connections have it already).
	Publish(p Publication) error
	// Conn returns a handle for a connection with net id id that another
	// server holds, or false when no server does (as far as the backend
	// can tell without waiting). The handle's Send and Call go through the
	// backend; its Close, Value and SetValue act on the remote connection
	// as the backend documents.
	Conn(id uint64) (handler.Conn, bool)
	// Query asks every other server for its part of a lookup and returns
	// their answers merged, or ctx's error.
	Query(ctx context.Context, q Query) (Answer, error)
}

// Publication is one send that reaches several servers' connections.
//
// It is a plain value: safe to copy and to hand to another goroutine.
type Publication struct {
	Op codec.Opcode
	// Obj is the encoded JSON object, already validated. The backend may
	// keep it: the server never writes it again.
	Obj []byte
	// Group names the group whose members get it; "" means every
	// connection.
	Group string
	// Except is the net id of a connection left out, or 0.
	Except uint64
}

// QueryKind says what a [Query] asks.
type QueryKind uint8

// The lookups a [Query] can make.
const (
	// QueryLen asks for the number of open connections.
	QueryLen QueryKind = iota + 1
	// QueryMembers asks for the net ids of a group's members.
	QueryMembers
	// QueryIdentity asks for the net ids of the connections authenticated
	// as an identity.
	QueryIdentity
)

// Query is one lookup across servers.
//
// It is a plain value: safe to copy and to hand to another goroutine.
type Query struct {
	Kind QueryKind
	// Name is the group (QueryMembers) or the identity (QueryIdentity).
	Name string
}

// Answer is what the other servers answered to a [Query]: a count for
// QueryLen, net ids for the others.
//
// It is a plain value: safe to copy and to hand to another goroutine.
type Answer struct {
	Count int
	IDs   []uint64
}

// Host is a server as its backend and the project's own modules (metrics,
// service) see it: its local connections only, and the hooks they need.
// Applications use the [Server]'s methods instead. A server's Host is made
// by NewServer; [Server.Host] returns it.
//
// It is safe for concurrent use by multiple goroutines.
type Host struct {
	s *Server
}
