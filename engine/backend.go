// This file holds the backend seam: the interface through which a
// server's sends, lookups and calls reach the connections other servers
// hold (a cluster), and how the server starts and stops its backend. The
// Host, through which a backend or another of the project's own modules
// reaches the server's local connections, is in host.go.

package engine

import (
	"context"
	"fmt"

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
	// Start is called when the server starts serving ([Server.StartOn],
	// [Server.Start], [Server.Serve], or [Server.Adopt], whichever comes
	// first), before it accepts or adopts a connection, with that call's
	// context; an error fails the start, and a later start calls it
	// again. Once it succeeded it is not called again.
	Start(ctx context.Context) error
	// Stop is called once, when the server shuts down ([Server.Shutdown],
	// [Server.Close]) after its own connections closed, if Start
	// succeeded; ctx bounds its waiting (Close gives an ended one), and
	// it releases what the backend holds even then. Its error is
	// Shutdown's unless Shutdown has one already.
	Stop(ctx context.Context) error
	// NetID returns the net id of a new connection: unique across every
	// server of the backend, never 0. It runs on an event loop for every
	// accepted connection, so it must be fast.
	NetID() uint64
	// Publish hands a publication to the other servers. It must not wait:
	// a backend that cannot take it returns an error (the server's own
	// connections have it already).
	Publish(p Publication) error
	// Conn returns a handle for a connection with net id id that another
	// server holds, or, when no server does (as far as the backend can
	// tell without waiting), an error that wraps [ErrUnknownConn] and says
	// why (a backend's own errors, such as a server known down, wrapped
	// with it): the server's Send and Call by id return it. The handle's
	// Send and Call go through the backend; its Close, Value and SetValue
	// act on the remote connection as the backend documents.
	Conn(id uint64) (handler.Conn, error)
	// Query asks every other server for its part of a lookup
	// ([Host.Answer] there) and returns their answers merged (counts
	// added, ids joined); with an error, ctx's or its own, what it merged
	// so far.
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
	// QueryConns asks for the net ids of every open connection.
	QueryConns
)

// Query is one lookup across servers.
//
// It is a plain value: safe to copy and to hand to another goroutine.
type Query struct {
	Kind QueryKind
	// Name is the group (QueryMembers) or the identity (QueryIdentity).
	Name string
}

// Answer is one or more servers' answer to a [Query]: a count for every
// kind, and the net ids counted for every kind but QueryLen. A backend
// merges answers by adding the counts and joining the ids.
//
// It is a plain value: safe to copy and to hand to another goroutine.
type Answer struct {
	Count int
	IDs   []uint64
}

// startBackend starts the backend, if any and not started yet: before a
// connection is accepted or adopted.
func (s *Server) startBackend(ctx context.Context) error {
	if s.be == nil {
		return nil
	}
	s.beMu.Lock()
	defer s.beMu.Unlock()
	if s.beOn || s.state.Load() == stateShutdown {
		return nil // a shut server's start fails on its own
	}
	if err := s.be.Start(ctx); err != nil {
		return fmt.Errorf("engine: start the backend: %w", err)
	}
	s.beOn = true
	return nil
}

// stopBackend stops the backend if it was started: once, after the
// server's connections closed.
func (s *Server) stopBackend(ctx context.Context) error {
	if s.be == nil {
		return nil
	}
	s.beMu.Lock()
	defer s.beMu.Unlock()
	if !s.beOn {
		return nil
	}
	s.beOn = false
	if err := s.be.Stop(ctx); err != nil {
		return fmt.Errorf("engine: stop the backend: %w", err)
	}
	return nil
}
