// This file holds TLS's options, their checks and the TLS state a handler
// can read. TLS itself is internal/tlslayer's; tlsconn.go joins it to a
// connection.
package engine

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/tlslayer"
)

// Reasons a TLS connection closed, given to the disconnect callback (once
// the connect callback ran), to [Client.Err] and to the log.
var (
	// ErrTLSHandshake: the TLS handshake failed, did not finish within
	// [WithHandshakeTimeout] (the reason then wraps
	// context.DeadlineExceeded), or did not begin because [WithMaxHandshakes]
	// handshakes were in progress. It wraps crypto/tls's error: match it
	// with errors.As, for example with *tls.CertificateVerificationError,
	// tls.RecordHeaderError (a peer that does not speak TLS) or
	// tls.AlertError.
	ErrTLSHandshake = tlslayer.ErrHandshake
	// ErrTLS: after the handshake, what the peer sent could not be read as
	// TLS records: a bad MAC, a record truncated by the end of the
	// connection, an alert. It wraps crypto/tls's error, or
	// io.ErrUnexpectedEOF for a truncated record. A peer that ends TLS with
	// close_notify is not an error: the reason wraps io.EOF.
	ErrTLS = tlslayer.ErrTLS
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
// [ErrTLSHandshake]. Defaults to 1024; it must be at least 1. It has no
// effect without [WithTLS].
func WithMaxHandshakes(n int) Option {
	return sharedOption(func(c *config) { c.maxHandshakes = n })
}

// TLSState returns the TLS state of c, a server's connection or a
// [*Client] (its current connection): the version, cipher suite, ALPN
// protocol, server name and, with mutual TLS, the peer's certificates. It
// reports false for a connection without TLS, one whose handshake is not
// over, and any other handler.Conn. It is safe for concurrent use.
func TLSState(c handler.Conn) (tls.ConnectionState, bool) {
	var cc *conn
	switch c := c.(type) {
	case *conn:
		// A server's connection reaches the application only once it is
		// ready, after its layer was set.
		cc = c
	case *Client:
		// The current connection may be opening on its loop: only a ready
		// one (read under the client's lock) has its layer set.
		if cur := c.current(); cur != nil && c.isReady(cur) {
			cc = cur
		}
	}
	if cc == nil || cc.tl == nil {
		return tls.ConnectionState{}, false
	}
	// A layer that carries TLS says so, whatever it is stacked with.
	if st, ok := cc.tl.l.(tlsStater); ok {
		return st.tlsState()
	}
	return tls.ConnectionState{}, false
}

// tlsStater is the optional interface of a layer that carries TLS, or
// stacks one that does: its state once the handshake is over. Safe from
// any goroutine.
type tlsStater interface {
	tlsState() (tls.ConnectionState, bool)
}

// setupTLS checks the TLS options and, with [WithTLS], gives every
// connection a TLS layer. Called by validate.
func (c *config) setupTLS(server bool) error {
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
	t := &tlsSide{side: tlslayer.NewSide(cfg, server, c.handshakeTimeout, c.maxHandshakes, ErrShutdown)}
	c.tls = t
	c.newLayer = t.newLayer
	return nil
}

// untls returns addr with a tls:// scheme turned into tcp://, and an error
// for tls:// without [WithTLS].
func (c *config) untls(addr string) (string, error) {
	rest, ok := strings.CutPrefix(addr, "tls://")
	if !ok {
		return addr, nil
	}
	if c.tls == nil {
		return "", fmt.Errorf("engine: address %q: tls:// needs the WithTLS option", addr)
	}
	return "tcp://" + rest, nil
}

// stopTLS ends the handshakes in progress and refuses new ones: the first
// step of a shutdown.
func (c *config) stopTLS() {
	if c.tls != nil {
		c.tls.side.Stop()
	}
}

// waitTLS waits for the handshake goroutines to end, once the event loops
// have stopped (they start them).
func (c *config) waitTLS() {
	if c.tls != nil {
		c.tls.side.Wait()
	}
}
