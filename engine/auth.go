// This file holds authentication: a server that requires it reads only a
// connection's credentials (-9) until an authenticator of the
// application's accepts them, within a deadline; the identity it returns
// stays with the connection. A client sends its credentials first, on
// every connection.

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Authenticator checks a connection's credentials, the JSON object of its
// -9 frame (borrowed until it returns), and returns the identity to attach
// to the connection, or an error, which refuses it. The peer gets the
// failure the error names, by the rule of handlers' errors
// ([handler.Failure]): an [*handler.Error] or a [handler.Reasoner]
// (wrapped or not) with its own reason and message, so that an
// authenticator can say "TokenExpired"; any other error gets reason
// Unauthorized with a generic message, its text staying in the log. It runs on a goroutine of
// its own and must return when ctx ends (the authentication deadline, or
// the server's shutdown). c may be sent to, but is not yet in the server's
// registry.
type Authenticator func(ctx context.Context, c handler.Conn, credentials []byte) (identity string, err error)

// Authentication states of a connection (conn.auth).
const (
	authDone    uint8 = iota // nothing to wait for
	authWaiting              // the server waits for the -9 frame
	authPending              // the authenticator runs: frames wait in the buffer
	authRefused              // refused: it closes; frames are answered Unauthorized
)

// ReasonUnauthorized answers frames sent before authenticating, and a
// refused or late authentication.
const ReasonUnauthorized = "Unauthorized"

// ErrUnauthorized is why a connection closed whose authentication failed
// or did not come within the deadline; a client made with
// [WithCredentials] that is refused ends with an error wrapping it and
// the server's failure ([handler.ReasonOf] gives its reason), and does not
// reconnect.
var ErrUnauthorized = errors.New("engine: unauthorized")

// IdentityOf returns the identity an authenticator gave the connection:
// for a server's connection, what its authenticator returned; for a
// client's connection made [WithCredentials] (a callback's, or
// [Client.Conn]), what the server's acknowledgement on it named. It
// returns "" for a connection that did not authenticate, and for any
// other handler.Conn. It is safe for concurrent use.
func IdentityOf(c handler.Conn) string {
	if c, ok := c.(*conn); ok {
		return c.identity()
	}
	return ""
}

// identity returns what authenticated the connection, or "". It is safe
// for concurrent use.
func (c *conn) identity() string {
	x := c.x.Load()
	if x == nil {
		return ""
	}
	x.valMu.Lock()
	defer x.valMu.Unlock()
	return x.identity
}

// setIdentity sets what authenticated the connection. It is safe for
// concurrent use.
func (c *conn) setIdentity(id string) {
	x := c.extra()
	x.valMu.Lock()
	x.identity = id
	x.valMu.Unlock()
}

// ConnsOf returns this server's open connections that authenticated as
// identity: "send to this user" (a user may have several).
// [Server.ConnsOfContext] finds those of every server of a [Backend].
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
			if c.auth == authWaiting || c.auth == authPending {
				c.refuseAuth(ReasonUnauthorized, "Authentication did not come in time")
			}
		}}, nil)
	})
}

// authFrame handles a frame of a connection not authenticated yet. On the
// loop.
func (c *conn) authFrame(op codec.Opcode, obj []byte, call codec.Call) {
	switch op {
	case codec.OpAuth:
		s := c.owner().(*Server)
		if c.auth != authWaiting {
			return // refused already: it closes
		}
		cfg := &s.side.cfg
		if !s.authBudget.take(c.remoteAddr(), cfg.authFailBurst, cfg.authFailEvery, time.Now()) {
			s.authFailed(c, errAuthBudget)
			c.refuseAuth(ReasonUnauthorized, "Too many failed authentications from your address: try again later")
			return
		}
		c.auth = authPending
		c.holdReads(holdAuth) // no further frame is read until the verdict
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
		reason, msg := authFailure(err)
		s.authFailed(c, err)
		c.refuseAuth(reason, msg)
		return
	}
	s.authBudget.give(c.remoteAddr(), s.side.cfg.authFailEvery, time.Now())
	x := c.extra()
	if x.authTimer != nil {
		x.authTimer.Stop()
	}
	c.setIdentity(id)
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
	c.releaseReads(holdAuth) // the frames that waited for the verdict
}

// authenticated reports whether c's frames are dispatched: it
// authenticated, or the server needs no authentication. On the loop.
func (c *conn) authenticated() bool { return c.auth == authDone }

// authRunning reports whether c's authenticator runs now. On the loop.
func (c *conn) authRunning() bool { return c.auth == authPending }

// errAuthBudget is what the summary log says of credentials refused
// because their address spent its budget of failures.
var errAuthBudget = errors.New("the address spent its budget of authentication failures")

// authFailed logs a refused authentication: one warning a second at most,
// which says how many failed since the last one, the last address and
// error (a peer that tries tokens by the thousand must not write a line
// each).
func (s *Server) authFailed(c *conn, err error) {
	s.authFails.warn(s.side.cfg.logger, "last", c.RemoteAddr(), "err", err)
}

// authFailure returns the reason and message a refused peer gets for an
// authenticator's error, by the rule handlers' errors follow
// ([handler.Failure]): an error that names a reason ([handler.ReasonOf]: an
// [*handler.Error], a [handler.Reasoner], wrapped or not) is sent with its
// own; any other gets Unauthorized and a generic message, its text staying
// in the log.
func authFailure(err error) (reason, message string) {
	if handler.ReasonOf(err) == "" {
		return ReasonUnauthorized, "Authentication failed"
	}
	f := handler.Failure(err)
	return f.Reason, f.Message
}

// refuseAuth answers with a failure (reason, message) and closes after it.
func (c *conn) refuseAuth(reason, message string) {
	c.auth = authRefused // nothing more is dispatched; reading stays held if it was
	c.side.stats.refused[refuseAuthIdx].Add(1)
	c.sendFailure(codec.OpFailure, nil, reason, message)
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
	id := c.identity()
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

	authBudget authBudget // failures per address (WithAuthFailureLimit)
	authFails  repeated   // the summary log line of failures
}

// What answered a client's credentials on a connection (connExtra.creds): a
// server that requires authentication answers them first, with its -9
// frame or with a failure and a close (docs/PROTOCOL.md §6.2).
const (
	credsNone    uint8 = iota // none sent, or answered otherwise
	credsSent                 // sent; no frame read since
	credsRefused              // the first frame read since was a failure, and none followed
)

// credsAnswer notes the frames that follow the credentials: a failure that
// comes first, and is the last before the server closes, is the refusal
// of the credentials, whatever its reason (an authenticator may name its
// own); any other frame means they were not refused so. x is c's
// connExtra. On the loop.
func (c *conn) credsAnswer(x *connExtra, op codec.Opcode, obj []byte) {
	switch {
	case op == codec.OpMessageSize || op == codec.OpPong:
		return // the size, and pongs, come whether or not the credentials wait
	case x.creds == credsSent && op == codec.OpFailure:
		var f handler.Error
		if codec.Unmarshal(obj, &f) == nil {
			x.creds = credsRefused
			x.refusal = handler.FromWire(f.Reason, f.Message)
			return
		}
	}
	x.creds = credsNone
	x.refusal = nil
}

// refused notes a server's refusal of the client's credentials by reason
// Unauthorized: the client ends with ErrUnauthorized when the server
// closes, and does not reconnect with credentials it was told are wrong.
// (A refusal by another reason is found by credsAnswer.) On the loop.
func (cl *Client) refused(_ *conn, obj []byte) {
	if cl.creds == nil || !bytes.Contains(obj, []byte(ReasonUnauthorized)) {
		return
	}
	var f handler.Error
	if codec.Unmarshal(obj, &f) != nil || f.Reason != ReasonUnauthorized {
		return
	}
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = fmt.Errorf("%w: %w", ErrUnauthorized, handler.FromWire(f.Reason, f.Message))
	}
	cl.mu.Unlock()
}
