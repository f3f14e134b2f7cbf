// This file holds authentication: a server that requires it reads only a
// connection's credentials (-9) until an authenticator of the
// application's accepts them, within a deadline; the identity it returns
// stays with the connection. A client sends its credentials first, on
// every connection.

package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Authenticator checks a connection's credentials, the JSON object of its
// -9 frame (borrowed until it returns), and returns the identity to attach
// to the connection, or an error, which refuses it: the peer gets an
// Unauthorized failure with the error's text if it names a reason (see
// [handler.Reasoner]), a generic one otherwise. It runs on a goroutine of
// its own and must return when ctx ends (the authentication deadline, or
// the server's shutdown). c may be sent to, but is not yet in the server's
// registry.
type Authenticator func(ctx context.Context, c handler.Conn, credentials []byte) (identity string, err error)

// Authentication states of a connection (conn.auth).
const (
	authDone    uint8 = iota // nothing to wait for
	authWaiting              // the server waits for the -9 frame
	authPending              // the authenticator runs: frames wait in the buffer
)

// ReasonUnauthorized answers frames sent before authenticating, and a
// refused or late authentication.
const ReasonUnauthorized = "Unauthorized"

// ErrUnauthorized is why a connection closed whose authentication failed
// or did not come within the deadline; a client made with
// [WithCredentials] that is refused ends with it and does not reconnect.
var ErrUnauthorized = errors.New("engine: unauthorized")

// WithAuth makes the server require authentication: a connection gets
// its -2 frame, then must send its credentials in a -9 frame within
// timeout (docs/PROTOCOL.md §6.2); until fn accepts them, every other frame
// is answered with an Unauthorized failure and not dispatched, and the
// connection is neither in the server's registry nor reached by sends to
// all; its connect callback runs once it is authenticated. A refusal or a
// deadline passed gets the failure, then a close with [ErrUnauthorized].
// Frames that follow the -9 frame wait for the verdict, in order. Defaults
// to none; timeout must be positive.
func WithAuth(fn Authenticator, timeout time.Duration) ServerOption {
	return serverOption(func(c *config) { c.auth, c.authTimeout = fn, timeout })
}

// WithCredentials makes a client send v (which must encode as a JSON
// object) in a -9 frame as the first frame of every connection, before
// anything held or sent meanwhile, for a server that requires it
// ([WithAuth]). Given to [Dialer.Dial], it is that client's own: many
// clients of one dialer may each log in as someone else. Defaults to none.
func WithCredentials(v any) DialOption {
	return dialOption{client: func(c *config) { c.credentials = v }, dial: func(d *dialConfig) { d.credentials = v }}
}

// IdentityOf returns the identity an authenticator gave the connection:
// for a server's connection, what its authenticator returned; for a
// [*Client] made [WithCredentials], what the server's acknowledgement
// named. It returns "" for a connection that did not authenticate.
func IdentityOf(c handler.Conn) string {
	switch c := c.(type) {
	case *conn:
		if x := c.x.Load(); x != nil {
			x.valMu.Lock()
			defer x.valMu.Unlock()
			return x.identity
		}
	case *Client:
		c.valMu.Lock()
		defer c.valMu.Unlock()
		return c.identity
	}
	return ""
}

// ConnsOf returns the open connections that authenticated as identity:
// "send to this user" (a user may have several).
func (s *Server) ConnsOf(identity string) []handler.Conn {
	s.identsMu.Lock()
	defer s.identsMu.Unlock()
	var out []handler.Conn
	for _, c := range s.idents[identity] {
		out = append(out, c)
	}
	return out
}

// identities maps identities to their connections.
type identities = map[string]map[uint64]*conn

// startAuth sets a new connection waiting for its credentials, with its
// deadline. On the loop.
func (s *Server) startAuth(c *conn) {
	c.auth = authWaiting
	x := c.extra()
	x.authTimer = time.AfterFunc(s.side.cfg.authTimeout, func() {
		_ = c.loop.enqueue(task{kind: taskFunc, fn: func() {
			if c.auth != authDone {
				c.refuseAuth("Authentication did not come in time")
			}
		}}, nil)
	})
}

// authFrame handles a frame of a connection not authenticated yet. On the
// loop.
func (c *conn) authFrame(op codec.Opcode, obj []byte, call codec.Call) {
	switch op {
	case codec.OpAuth:
		s := c.owner.(*Server)
		c.auth = authPending // traffic reads no further frame until the verdict
		creds := clone(obj)
		ctx, cancel := context.WithTimeout(s.authCtx, s.side.cfg.authTimeout)
		s.authWG.Add(1)
		go func() {
			defer s.authWG.Done()
			defer cancel()
			var id string
			var err error
			c.safely("authenticator", func() { id, err = s.side.cfg.auth(ctx, c, creds) })
			if err == nil && id == "" && ctx.Err() != nil {
				err = ctx.Err()
			}
			_ = c.loop.enqueue(task{kind: taskFunc, fn: func() { s.authDone(c, id, err) }}, nil)
		}()
	case codec.OpPing:
		_ = c.loop.enqueue(task{kind: taskSend, op: codec.OpPong, c: c}, obj)
	case codec.OpMessageSize:
		c.sizeFrame(obj)
	case codec.OpFailure, codec.OpPong:
	case codec.OpRequest:
		c.sendFailure(codec.OpReplyFailure, &call.ID, ReasonUnauthorized, "Authenticate first (opcode -9)")
	default:
		c.sendFailure(codec.OpFailure, nil, ReasonUnauthorized, "Authenticate first (opcode -9)")
	}
}

// authDone applies an authenticator's verdict. On the loop.
func (s *Server) authDone(c *conn, id string, err error) {
	if c.closed.Load() || c.auth != authPending {
		return
	}
	if err != nil {
		msg := "Authentication failed"
		if r, ok := err.(handler.Reasoner); ok {
			msg = r.Error()
		}
		s.side.cfg.logger.Info("simplerpc: authentication failed", "conn", c.id, "remote", c.RemoteAddr(), "err", err)
		c.refuseAuth(msg)
		return
	}
	x := c.extra()
	if x.authTimer != nil {
		x.authTimer.Stop()
	}
	x.valMu.Lock()
	x.identity = id
	x.valMu.Unlock()
	c.auth = authDone
	s.identsMu.Lock()
	if s.idents == nil {
		s.idents = make(identities)
	}
	if s.idents[id] == nil {
		s.idents[id] = make(map[uint64]*conn)
	}
	s.idents[id][c.id] = c
	s.identsMu.Unlock()
	if obj, err := codec.Marshal(map[string]string{"identity": id}); err == nil {
		c.writeObj(codec.OpAuth, obj)
	}
	s.admit(c)
	c.traffic() // the frames that waited for the verdict
}

// refuseAuth answers with an Unauthorized failure and closes after it.
func (c *conn) refuseAuth(message string) {
	c.auth = authWaiting // nothing more is dispatched
	c.sendFailure(codec.OpFailure, nil, ReasonUnauthorized, message)
	_ = c.loop.enqueue(task{kind: taskClose, c: c, err: ErrUnauthorized}, nil)
}

// forgetIdentity removes a closed connection from the identities. On its
// loop.
func (s *Server) forgetIdentity(c *conn) {
	x := c.x.Load()
	if x == nil {
		return
	}
	if x.authTimer != nil {
		x.authTimer.Stop()
	}
	x.valMu.Lock()
	id := x.identity
	x.valMu.Unlock()
	if id == "" {
		return
	}
	s.identsMu.Lock()
	defer s.identsMu.Unlock()
	if m := s.idents[id]; m != nil {
		delete(m, c.id)
		if len(m) == 0 {
			delete(s.idents, id)
		}
	}
}

// authState is what a server keeps for authentication.
type authState struct {
	identsMu sync.Mutex // guards idents
	idents   identities
	authWG   sync.WaitGroup     // authenticators running
	authCtx  context.Context    // ended at shutdown
	authStop context.CancelFunc // ends authCtx
}
