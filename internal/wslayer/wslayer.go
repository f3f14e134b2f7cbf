// Package wslayer runs WebSocket (RFC 6455) over bytes, without sockets:
// the HTTP upgrade (the server's answer, the client's request and its
// check), then messages both ways. It takes the wire bytes that arrived and
// gives whole messages; it takes messages and gives wire bytes. What it
// writes by itself (the upgrade, pongs, close frames) goes out through the
// environment it is handed, never to a socket. It knows nothing of what the
// messages carry.
//
// A Layer is not safe for concurrent use: one goroutine (an event loop)
// calls its methods; only the environment's Wake may be called from
// another goroutine, by the handshake's timer.
package wslayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Errors a Layer fails with.
var (
	// ErrHandshake: the HTTP upgrade was refused or did not complete in
	// time.
	ErrHandshake = errors.New("engine: WebSocket handshake failed")
	// ErrProtocol: after the upgrade, the peer broke RFC 6455.
	ErrProtocol = errors.New("engine: WebSocket protocol error")
)

// Config configures the layers of one listener or one client. It is read,
// never written, by the layers, which may share it.
type Config struct {
	// Client makes the client's side: it writes the upgrade request and
	// masks what it sends; else the server's side.
	Client bool
	// Path is the server's path to upgrade at, or the client's request
	// target (path and query).
	Path string
	// Host is the client's Host header.
	Host string
	// Subprotocol is offered by the client and echoed by the server to a
	// client that offers it.
	Subprotocol string
	// Origins are the host patterns (path.Match, case-insensitive) of the
	// browsers a server accepts; nil: the same host, or no Origin.
	Origins []string
	// Binary makes outbound messages binary, not text.
	Binary bool
	// MaxHeader caps the bytes of the upgrade request or response.
	MaxHeader int
	// Timeout bounds the upgrade.
	Timeout time.Duration
}

// Env is what a Layer may do to the connection it runs on.
type Env struct {
	// Out writes wire bytes: the upgrade, pongs, close frames. Its error
	// ends the input that called it.
	Out func([]byte) error
	// Wake makes the loop call Input again soon (with no new bytes); from
	// any goroutine.
	Wake func()
	// Close closes the connection with reason once the messages handed
	// over so far are handled: the peer's close frame.
	Close func(reason error)
	// Limit returns the largest message the peer may send now.
	Limit func() int
	// Upgraded, if not nil, runs when a client's upgrade is accepted.
	Upgraded func()
}

// Layer is the WebSocket of one connection.
type Layer struct {
	cfg *Config
	env Env
	key string // client: the Sec-WebSocket-Key sent

	timer   *time.Timer
	expired atomic.Bool // the upgrade's deadline passed

	upgraded   bool
	closeSent  bool      // a close frame went out: nothing more is written
	peerClosed bool      // the peer's close frame arrived: the rest is ignored
	msg        []byte    // a fragmented message being put together
	msgOp      ws.OpCode // its opcode, 0 for none

	codec Codec
}

// New returns the layer of one connection.
func New(cfg *Config, env Env) *Layer { return &Layer{cfg: cfg, env: env} }

// Start arms the upgrade's deadline and, for a client, writes the request.
func (l *Layer) Start() error {
	l.timer = time.AfterFunc(l.cfg.Timeout, func() {
		l.expired.Store(true)
		l.env.Wake()
	})
	if l.cfg.Client {
		return l.request()
	}
	return nil
}

// Input consumes wire bytes from in (borrowed until it returns), calling
// msg with each complete data message (borrowed until msg returns). It
// returns how many bytes of in it consumed (a frame not all there is left)
// and whether the upgrade is over. An error wraps ErrHandshake or
// ErrProtocol, or is Env.Out's; the layer has then written what the peer
// is owed (an HTTP status, a close frame).
func (l *Layer) Input(in []byte, msg func([]byte)) (int, bool, error) {
	n := 0
	if !l.upgraded {
		k, err := l.handshake(in)
		if err != nil || k == 0 {
			return k, false, err
		}
		n = k
		l.upgraded = true
		l.timer.Stop()
	}
	k, err := l.read(in[n:], msg)
	return n + k, true, err
}

// Pending reports a fragmented message begun and not finished. A frame not
// all there is left in the caller's bytes, which it sees itself.
func (l *Layer) Pending() bool { return l.msgOp != 0 && !l.peerClosed }

// AppendMessage appends p as one whole, final message to dst; after a
// close frame it appends nothing (RFC 6455 §5.5.1).
func (l *Layer) AppendMessage(dst, p []byte) []byte {
	if l.closeSent {
		return dst
	}
	op := ws.OpText
	if l.cfg.Binary {
		op = ws.OpBinary
	}
	return l.appendFrame(dst, op, p)
}

// Writable reports whether AppendMessage appends a message: the upgrade
// is over and no close frame went out. A server's messages are then the
// same bytes on every connection (AppendServerMessage).
func (l *Layer) Writable() bool { return l.upgraded && !l.closeSent }

// AppendServerMessage appends p as one whole, final, unmasked message, text
// or binary, to dst: what AppendMessage appends on a server's Writable
// layer of that kind, built once for many connections.
func (c *Codec) AppendServerMessage(dst, p []byte, binary bool) []byte {
	op := ws.OpText
	if binary {
		op = ws.OpBinary
	}
	return c.AppendFrame(dst, op, p, false, [4]byte{})
}

// Stop ends the layer, once, with the error the connection closes with
// (nil for a close the engine asked for, io.EOF when the peer closed). A
// sound connection closed by the engine gets a close frame (1000, or 1001
// for goingAway). It returns the error to close with.
func (l *Layer) Stop(err error, goingAway bool) error {
	if l.timer != nil {
		l.timer.Stop()
	}
	if !l.upgraded {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the peer closed the connection: %w", ErrHandshake, io.ErrUnexpectedEOF)
		}
		return err
	}
	if err == nil && !l.closeSent {
		code := ws.StatusNormalClosure
		if goingAway {
			code = ws.StatusGoingAway
		}
		l.sendClose(code)
	}
	return err
}

// expiredError is the reason of an upgrade not done in time.
func (l *Layer) expiredError() error {
	return fmt.Errorf("%w: not done within %v: %w", ErrHandshake, l.cfg.Timeout, context.DeadlineExceeded)
}

// State is what a server's layer past the upgrade holds of the peer's
// stream that another process needs to go on reading it: a fragmented
// message begun (its opcode and the payload so far). A frame not all
// there is the caller's bytes, not the layer's.
type State struct {
	Op  byte   // the opcode of a fragmented message begun; 0 for none
	Msg []byte // its payload so far
}

// Export returns the layer's state, for a connection that leaves the
// process. It reports false when the state cannot go on elsewhere: the
// upgrade is not over, or a close frame went either way.
func (l *Layer) Export() (State, bool) {
	if !l.upgraded || l.closeSent || l.peerClosed || l.cfg.Client {
		return State{}, false
	}
	return State{Op: byte(l.msgOp), Msg: append([]byte(nil), l.msg...)}, true
}

// Resume returns the server's layer of a connection past its upgrade,
// with the state another process exported: it reads frames at once, and
// Start must not be called.
func Resume(cfg *Config, env Env, st State) *Layer {
	return &Layer{cfg: cfg, env: env, upgraded: true, msgOp: ws.OpCode(st.Op), msg: append([]byte(nil), st.Msg...)}
}
