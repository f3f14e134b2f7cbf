// This file holds the options of the transport layers, TLS and WebSocket,
// and their checks, made when a server or a dialer is built.

package engine

import (
	"crypto/tls"
	"path"
	"time"

	"github.com/simplerpc/simplerpc/internal/tlslayer"
)

// WithTLS makes every connection of the server or the dialer TLS, with the
// standard library's crypto/tls configured by cfg. cfg is cloned: the
// caller's value is never changed, and changes made to it later have no
// effect. Defaults to nil, plain TCP. A nil cfg is an invalid option.
//
// A server needs a certificate: Certificates, GetCertificate or
// GetConfigForClient (serving several names by SNI is the job of those
// callbacks). Mutual TLS is ClientAuth with ClientCAs; the peer's
// certificates are then in [TLSState]. ALPN (NextProtos), MinVersion and the
// cipher suites come from cfg too, with crypto/tls's defaults for what it
// leaves zero (TLS 1.2 at least).
//
// A client verifies the server against RootCAs (the system's roots if nil)
// and ServerName, which defaults to the host of the address dialled;
// InsecureSkipVerify turns verification off, for tests only. A client on a
// unix:// address must set ServerName.
//
// The callbacks of cfg (GetCertificate, GetConfigForClient,
// VerifyPeerCertificate, VerifyConnection, ...) run on the connection's
// handshake goroutine, not on the event loop: they may block, but must
// return once the context of their ClientHelloInfo or
// CertificateRequestInfo ends (at the handshake's deadline, or when the
// server or dialer stops, which waits for them).
//
// The engine sets two fields of its copy: Renegotiation to
// RenegotiateNever, since a renegotiation would block the loop, and
// DynamicRecordSizingDisabled to true, since the loop writes each round's
// frames in one call, which then becomes records of up to 16 KiB rather
// than a ramp of small ones. A config that GetConfigForClient returns is
// used as it is.
//
// With WithTLS an address may say tls://host:port, the same as host:port;
// tls:// without WithTLS is an error of Start, Serve and Dial.
func WithTLS(cfg *tls.Config) Option {
	return sharedOption(func(c *config) {
		c.useTLS = true
		c.tlsConfig = nil
		if cfg != nil {
			c.tlsConfig = cfg.Clone()
		}
	})
}

// WithHandshakeTimeout bounds each TLS handshake: a connection whose
// handshake is not over d after it opened is closed with a reason wrapping
// [ErrTLSHandshake] and context.DeadlineExceeded. Defaults to 10s; it must
// be positive. It bounds the WebSocket upgrade the same way (with 408 and
// [ErrWebSocketHandshake]); it has no other effect without [WithTLS].
func WithHandshakeTimeout(d time.Duration) Option {
	return sharedOption(func(c *config) { c.handshakeTimeout = d })
}

// WithMaxHandshakes caps the TLS handshakes in progress at once on a server
// or a dialer, each of which runs on a goroutine of its own: a connection
// that opens past the cap is closed at once with a reason wrapping
// [ErrTLSHandshake]. A server also caps those from one remote IP address
// at a sixteenth of n (at least 1), so that one address holding
// handshakes open cannot lock every other client out. Defaults to 1024
// (64 per address); it must be at least 1. It has no effect without
// [WithTLS].
func WithMaxHandshakes(n int) Option {
	return sharedOption(func(c *config) { c.maxHandshakes = n })
}

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

// setupTLS checks the options of the layers: the WebSocket ones (for a
// server's WebSocket listeners) and the TLS ones, and with [WithTLS] gives
// every connection a TLS layer. Called by validate, so that NewServer and
// Dial report a bad one.
func (c *config) setupTLS(server bool) error {
	if c.ws.maxHeader == 0 {
		c.ws = defaultWSConfig()
	}
	if c.ws.maxHeader < 256 {
		return invalidOption("WebSocketMaxHeader", "%d (want >= 256)", c.ws.maxHeader)
	}
	for _, p := range c.ws.origins {
		if _, err := path.Match(p, ""); err != nil {
			return invalidOption("WebSocketOrigins", "%q: %v", p, err)
		}
	}
	switch {
	case c.handshakeTimeout <= 0:
		return invalidOption("WithHandshakeTimeout", "%v (want > 0)", c.handshakeTimeout)
	case c.maxHandshakes < 1:
		return invalidOption("WithMaxHandshakes", "%d (want >= 1)", c.maxHandshakes)
	case !c.useTLS:
		return nil
	case c.tlsConfig == nil:
		return invalidOption("WithTLS", "nil config")
	}
	// A copy of the option's own: one option value may configure several
	// servers or dialers.
	cfg := c.tlsConfig.Clone()
	if server && len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return invalidOption("WithTLS", "a server needs a certificate: Certificates, GetCertificate or GetConfigForClient")
	}
	cfg.Renegotiation = tls.RenegotiateNever
	cfg.DynamicRecordSizingDisabled = true
	t := &tlsSide{side: tlslayer.NewSide(cfg, server, c.handshakeTimeout, c.maxHandshakes, max(c.maxHandshakes/16, 1), ErrShutdown)}
	c.tls = t
	c.newLayer = t.newLayer
	return nil
}
