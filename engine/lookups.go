// This file holds the lookups that span a backend's servers: how many
// connections, which, whose, and a group's members, asked of every server
// with a context.

package engine

import (
	"context"
	"fmt"

	"github.com/simplerpc/simplerpc/handler"
)

// LenContext returns the number of open connections of every server: this
// one's ([Server.Len]) and, with a [Backend], the other servers'. Without
// a backend it returns at once. If ctx ends or the backend fails first, it
// returns this server's count and the error.
func (s *Server) LenContext(ctx context.Context) (int, error) {
	n := s.Len()
	if s.be == nil {
		return n, nil
	}
	a, err := s.query(ctx, Query{Kind: QueryLen})
	return n + a.Count, err
}

// ConnsContext returns the open connections of every server, in no
// particular order: this one's ([Server.Conns]) and, with a [Backend], a
// handle for each of the other servers' (see [Server.Conn]). Without a
// backend it returns at once. If ctx ends or the backend fails first, it
// returns this server's connections and the error.
func (s *Server) ConnsContext(ctx context.Context) ([]handler.Conn, error) {
	return s.withRemote(ctx, s.Conns(), Query{Kind: QueryConns})
}

// ConnsOfContext returns the open connections that authenticated as
// identity on any server: this one's ([Server.ConnsOf]) and, with a
// [Backend], a handle for each of the other servers'. Without a backend
// it returns at once. If ctx ends or the backend fails first, it returns
// this server's connections and the error.
func (s *Server) ConnsOfContext(ctx context.Context, identity string) ([]handler.Conn, error) {
	return s.withRemote(ctx, s.ConnsOf(identity), Query{Kind: QueryIdentity, Name: identity})
}

// LenContext returns the number of the group's members on every server:
// this one's ([Group.Len]) and, with a [Backend], the other servers'.
// Without a backend it returns at once. If ctx ends or the backend fails
// first, it returns this server's count and the error.
func (g Group) LenContext(ctx context.Context) (int, error) {
	n := g.Len()
	if g.s.be == nil || g.name == "" {
		return n, nil
	}
	a, err := g.s.query(ctx, Query{Kind: QueryMembers, Name: g.name})
	return n + a.Count, err
}

// MembersContext returns the group's members on every server, in no
// particular order: this one's ([Group.Members]) and, with a [Backend], a
// handle for each of the other servers'. Without a backend it returns at
// once. If ctx ends or the backend fails first, it returns this server's
// members and the error.
func (g Group) MembersContext(ctx context.Context) ([]handler.Conn, error) {
	local := g.Members()
	if g.name == "" {
		return local, nil
	}
	return g.s.withRemote(ctx, local, Query{Kind: QueryMembers, Name: g.name})
}

// withRemote appends to local a handle for each connection the other
// servers answer q with.
func (s *Server) withRemote(ctx context.Context, local []handler.Conn, q Query) ([]handler.Conn, error) {
	if s.be == nil {
		return local, nil
	}
	a, err := s.query(ctx, q)
	for _, id := range a.IDs {
		if rc, err := s.be.Conn(id); err == nil {
			local = append(local, rc)
		}
	}
	return local, err
}

// query asks the backend's other servers.
func (s *Server) query(ctx context.Context, q Query) (Answer, error) {
	a, err := s.be.Query(ctx, q)
	if err != nil {
		return a, fmt.Errorf("engine: query the other servers: %w", err)
	}
	return a, nil
}
