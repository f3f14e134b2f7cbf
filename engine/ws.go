// This file holds the server's WebSocket listeners: the listeners that
// speak it, the layers of the connections they accept, and the reasons a
// WebSocket connection closes. RFC 6455 itself is internal/wslayer's;
// wsconn.go joins it to a connection, layeroptions.go holds its options,
// addr.go the ws:// and wss:// addresses.

package engine

import (
	"fmt"
	"net"
	"time"

	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// Reasons a WebSocket connection closed, given to the disconnect callback
// (once the connect callback ran) and to the log.
var (
	// ErrWebSocketHandshake: the HTTP upgrade was refused (a wrong path or
	// method, a missing or bad header, an origin not allowed, a request
	// past the header cap), or did not complete within
	// [WithHandshakeTimeout] (the reason then wraps
	// context.DeadlineExceeded). The peer got an HTTP error status.
	ErrWebSocketHandshake = wslayer.ErrHandshake
	// ErrWebSocket: after the upgrade, the peer broke RFC 6455 (an unmasked
	// or reserved frame, a bad opcode, a message larger than the frame
	// size, invalid UTF-8 in a text message). The peer got a close frame
	// with the matching status code, which the reason names.
	ErrWebSocket = wslayer.ErrProtocol
)

// Subprotocol is the WebSocket subprotocol of simplerpc: the server echoes
// it in the upgrade when the client offers it, and accepts clients that
// offer none.
const Subprotocol = "simplerpc"

// WebSocketListener returns ln made a WebSocket listener for
// [Server.StartOn]: the server upgrades its connections at path (such as
// "/rpc") and runs the protocol over WebSocket messages, with the options
// of [WithWebSocket]. The server owns and closes ln as any other.
func WebSocketListener(ln net.Listener, path string) net.Listener {
	if path == "" {
		path = "/"
	}
	return &wsListener{Listener: ln, path: path}
}

// WebSocketTLSListener is [WebSocketListener] for wss://: the server runs
// TLS, with the config of [WithTLS] (which [Server.StartOn] then requires),
// under WebSocket on the connections of ln.
func WebSocketTLSListener(ln net.Listener, path string) net.Listener {
	if path == "" {
		path = "/"
	}
	return &wsListener{Listener: ln, path: path, tls: true}
}

// wsListener is a listener whose connections speak WebSocket.
type wsListener struct {
	net.Listener
	path string
	tls  bool // wss: TLS under the WebSocket
}

// SetDeadline sets the deadline of the listener beneath, so that a
// handover can pause its acceptor as it pauses a TCP one.
func (l *wsListener) SetDeadline(t time.Time) error {
	d, ok := l.Listener.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return fmt.Errorf("engine: cannot set a deadline on a %T", l.Listener)
	}
	return d.SetDeadline(t)
}

// layerFor returns the layer maker of the connections accepted from ln.
func (c *config) layerFor(ln net.Listener) (func(*conn) layer, error) {
	wl, ok := ln.(*wsListener)
	if !ok {
		return c.newLayer, nil
	}
	if wl.tls && c.tls == nil {
		return nil, fmt.Errorf("engine: listener %v: wss (WebSocketTLSListener) needs the WithTLS option", ln.Addr())
	}
	s := &wsSide{cfg: wslayer.Config{Path: wl.path, Subprotocol: Subprotocol, Origins: c.ws.origins,
		Binary: c.ws.binary, MaxHeader: c.ws.maxHeader, Timeout: c.handshakeTimeout}}
	if wl.tls {
		return stacked(c.tls.newLayer, s.newLayer), nil
	}
	return s.newLayer, nil
}
