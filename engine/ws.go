// This file holds the server's WebSocket: the options that configure it,
// the listeners that speak it and the ws:// and wss:// addresses that open
// them. RFC 6455 itself is internal/wslayer's; wsconn.go joins it to a
// connection, wsclient.go holds the client's addresses.

package engine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
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

// WebSocketOption configures the WebSocket listeners of a server (see
// [WithWebSocket]).
type WebSocketOption interface{ applyWS(*wsConfig) }

type wsOptionFunc func(*wsConfig)

func (f wsOptionFunc) applyWS(c *wsConfig) { f(c) }

// wsConfig is what the WebSocket options set.
type wsConfig struct {
	origins   []string // host patterns; nil: same host or no Origin
	binary    bool     // outbound messages are binary, not text
	maxHeader int      // bytes of the upgrade request
}

func defaultWSConfig() wsConfig { return wsConfig{maxHeader: 8 << 10} }

// WithWebSocket configures the server's WebSocket listeners: those of a
// ws://host:port/path address given to [Server.Start] or [Server.Serve],
// and those [WebSocketListener] wraps for [Server.StartOn]. Without it such
// listeners use the defaults of each [WebSocketOption]. Other listeners are
// not affected: one server may serve TCP and WebSocket clients alike, and a
// send to all reaches both.
//
// After the upgrade every WebSocket message carries exactly one protocol
// frame (docs/PROTOCOL.md §1), the same bytes as on TCP. The server sends
// text messages (see [WebSocketBinary]) and accepts text and binary ones; a
// client may leave out the frame's padding, which the server adds back; a
// message larger than the frame size is refused with close code 1009. A
// request for the upgrade that is not done within [WithHandshakeTimeout]
// closes the connection.
//
// ws:// is plain WebSocket, also on a server with [WithTLS]; wss:// (and
// [WebSocketTLSListener]) is TLS under WebSocket, with the config of
// [WithTLS], which it needs.
func WithWebSocket(opts ...WebSocketOption) ServerOption {
	return serverOption(func(c *config) {
		c.ws = defaultWSConfig()
		for _, o := range opts {
			o.applyWS(&c.ws)
		}
	})
}

// WebSocketOrigins allows browsers from the origins whose host matches one
// of patterns (path.Match syntax, case-insensitive: "example.com",
// "*.example.com", "localhost:*"); the upgrade of any other is refused with
// 403 Forbidden. The default allows only a request whose Origin has the
// host of its Host header, and one with no Origin (not from a browser),
// which guards against cross-site WebSocket hijacking. "*" allows every
// origin. The brackets of an IPv6 host are path.Match's character classes:
// escape them ("\\[::1\\]:8080"), or the pattern matches no origin.
func WebSocketOrigins(patterns ...string) WebSocketOption {
	return wsOptionFunc(func(c *wsConfig) { c.origins = append([]string(nil), patterns...) })
}

// WebSocketBinary makes the server send binary messages instead of text
// ones. Text suits browsers, whose frames then arrive as strings; the JSON
// of a frame is always valid UTF-8. Defaults to text.
func WebSocketBinary() WebSocketOption {
	return wsOptionFunc(func(c *wsConfig) { c.binary = true })
}

// WebSocketMaxHeader caps the bytes of the upgrade request, request line
// and headers: a larger one is refused with 431 Request Header Fields Too
// Large. Defaults to 8 KiB; it must be at least 256.
func WebSocketMaxHeader(n int) WebSocketOption {
	return wsOptionFunc(func(c *wsConfig) { c.maxHeader = n })
}

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

// listenAddr opens the listener for one of Start's addresses: ws:// and
// wss:// ones here, the others as listen does.
func (c *config) listenAddr(ctx context.Context, addr string) (net.Listener, error) {
	secure := strings.HasPrefix(addr, "wss://")
	if !secure && !strings.HasPrefix(addr, "ws://") {
		bare, err := c.untls(addr)
		if err != nil {
			return nil, err
		}
		return listen(ctx, bare)
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("engine: address %q: want ws://host:port/path or wss://host:port/path", addr)
	}
	if secure && c.tls == nil {
		return nil, fmt.Errorf("engine: address %q: wss:// needs the WithTLS option", addr)
	}
	ln, err := listen(ctx, "tcp://"+u.Host)
	if err != nil {
		return nil, err
	}
	if secure {
		return WebSocketTLSListener(ln, u.Path), nil
	}
	return WebSocketListener(ln, u.Path), nil
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
	if c.ws.maxHeader == 0 {
		c.ws = defaultWSConfig()
	}
	if c.ws.maxHeader < 256 {
		return nil, invalidOption("WebSocketMaxHeader", "%d (want >= 256)", c.ws.maxHeader)
	}
	for _, p := range c.ws.origins {
		if _, err := path.Match(p, ""); err != nil {
			return nil, invalidOption("WebSocketOrigins", "%q: %v", p, err)
		}
	}
	s := &wsSide{cfg: wslayer.Config{Path: wl.path, Subprotocol: Subprotocol, Origins: c.ws.origins,
		Binary: c.ws.binary, MaxHeader: c.ws.maxHeader, Timeout: c.handshakeTimeout}}
	if wl.tls {
		return stacked(c.tls.newLayer, s.newLayer), nil
	}
	return s.newLayer, nil
}
