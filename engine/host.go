// This file holds the Host: the narrow seam through which a server's
// backend delivers what other servers sent, and through which the
// project's own modules (metrics, service) reach what they need of a
// server, none of which an application calls.

package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Host is a server as its backend and the project's own modules (metrics,
// service) see it: its local connections only, and the hooks they need.
// Applications use the [Server]'s methods instead. A server's Host is made
// by NewServer; [Server.Host] returns it.
//
// Nothing a Host does calls the backend: what it delivers reaches this
// server's connections and goes no further.
//
// It is safe for concurrent use by multiple goroutines.
type Host struct {
	s *Server
}

// Host returns the server's host: for its [Backend], and for the
// project's own modules. It is safe for concurrent use.
func (s *Server) Host() *Host { return &s.host }

// Addr returns the address of the server's first listener, or nil before
// it listens: what a backend tells the other servers. It is safe for
// concurrent use.
func (h *Host) Addr() net.Addr { return h.s.Addr() }

// Deliver sends a publication another server made to this server's
// connections: every one, or the members of p.Group, but p.Except. It
// never publishes again and never waits; p.Obj is validated, then kept
// until every event loop wrote it, so the caller must not write it
// afterwards. It returns an error wrapping [codec.ErrNotObject] or
// [codec.ErrFrameTooLarge] for an object this server cannot send, and
// [ErrServerClosed] once the server shuts down.
func (h *Host) Deliver(p Publication) error {
	obj, err := codec.Object(p.Obj)
	if err == nil {
		err = h.s.deliver(p.Op, obj, p.Except, p.Group)
	}
	if err != nil {
		return fmt.Errorf("engine: deliver opcode %d: %w", p.Op, err)
	}
	return nil
}

// Send sends the encoded JSON object obj on opcode op to this server's
// connection with net id id; obj is validated and copied. It returns an
// error wrapping [ErrUnknownConn] when this server does not hold id (it
// never asks the backend), or [ErrClosed].
func (h *Host) Send(id uint64, op codec.Opcode, obj []byte) error {
	c, err := h.s.lookup(id)
	if err == nil {
		err = c.SendRaw(op, obj)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to net id %d: %w", op, id, err)
	}
	return nil
}

// CallAsync relays a call to this server's connection with net id id:
// req is the encoded JSON object of the request, and done runs once with
// the reply's JSON object, or the error (where the connection's callbacks
// run, as [handler.Conn]'s CallAsync). A failure the peer answered keeps
// its reason ([handler.ReasonOf]) and message, for the backend to carry
// back. It does not wait. It returns an error, and done never runs, when
// this server does not hold id ([ErrUnknownConn]) or the call cannot be
// made.
func (h *Host) CallAsync(ctx context.Context, id uint64, op codec.Opcode, req []byte, done func(reply []byte, err error)) error {
	c, err := h.s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: call opcode %d on net id %d: %w", op, id, err)
	}
	if done == nil {
		return fmt.Errorf("engine: call opcode %d on net id %d: %w", op, id, errNilDone)
	}
	reply := new(json.RawMessage)
	return c.CallAsync(ctx, op, json.RawMessage(req), reply, func(err error) {
		if err != nil {
			done(nil, err)
			return
		}
		done(*reply, nil)
	})
}

// Close closes this server's connection with net id id (its disconnect
// callback runs here). It returns an error wrapping [ErrUnknownConn] when
// this server does not hold id.
func (h *Host) Close(id uint64) error {
	c, err := h.s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: close net id %d: %w", id, err)
	}
	return c.Close()
}

// Has reports whether this server holds an open connection with net id id.
func (h *Host) Has(id uint64) bool { return h.s.conns.load(id) != nil }

// Answer returns this server's part of a lookup another server makes:
// its own connections only, never the backend's.
func (h *Host) Answer(q Query) Answer {
	s := h.s
	var ids []uint64
	switch q.Kind {
	case QueryLen:
		return Answer{Count: s.Len()}
	case QueryMembers:
		s.groupsMu.RLock()
		for id := range s.groups[q.Name] {
			ids = append(ids, id)
		}
		s.groupsMu.RUnlock()
	case QueryIdentity:
		s.identsMu.Lock()
		for id := range s.idents[q.Name] {
			ids = append(ids, id)
		}
		s.identsMu.Unlock()
	case QueryConns:
		for _, c := range s.conns.all() {
			ids = append(ids, c.ID())
		}
	}
	return Answer{Count: len(ids), IDs: ids}
}

// Router returns the router the server dispatches to, for code that
// instruments it (see [handler.Router.Use]), as package metrics does.
func (h *Host) Router() *handler.Router { return h.s.side.router }

// callObserver holds a call observer, so that it fits an atomic pointer.
type callObserver struct {
	fn func(op codec.Opcode, d time.Duration, err error)
}

// ObserveCalls sets fn to run once for every call the server makes to
// its connections ([Server.Call], or Call and CallAsync on a
// [handler.Conn] the server gave), when it ends: op is the opcode called,
// d the time from the call until its outcome, and err what the call
// returned, or done received, nil on success (classify it with
// errors.Is, errors.As or [handler.ReasonOf]). It replaces any earlier
// observer; nil removes it. A Call's observer runs on the caller's
// goroutine, a CallAsync's where done runs, just before it; it must not
// block, and a panic in it is recovered and logged. A CallAsync that
// returns an error is not observed, since done never runs. Calls made
// through a [Backend] to another server's connections are that server's
// to observe.
//
// Without an observer a call costs one atomic load more; with one, two
// clock reads, and a CallAsync one allocation. It may be called while
// calls are made.
func (h *Host) ObserveCalls(fn func(op codec.Opcode, d time.Duration, err error)) {
	if fn == nil {
		h.s.side.stats.calls.Store(nil)
		return
	}
	h.s.side.stats.calls.Store(&callObserver{fn: fn})
}
