// This file holds what TLS shows the application: the reasons a TLS
// connection closes and the TLS state a handler can read; and the end of a
// side's handshakes. TLS itself is internal/tlslayer's; tlsconn.go joins it
// to a connection, layeroptions.go holds its options.

package engine

import (
	"crypto/tls"

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

// TLSState returns the TLS state of c, a server's connection or a
// client's (a callback's, or [Client.Conn]): the version, cipher suite, ALPN
// protocol, server name and, with mutual TLS, the peer's certificates. It
// reports false for a connection without TLS, one whose handshake is not
// over, and any other handler.Conn. It is safe for concurrent use.
func TLSState(c handler.Conn) (tls.ConnectionState, bool) {
	// A connection reaches the application only once it is ready, after
	// its layer was set: a server's in its callbacks, a client's there too
	// or from Client.Conn.
	cc, _ := c.(*conn)
	var tl *layered
	if cc != nil {
		tl = cc.layered()
	}
	if tl == nil {
		return tls.ConnectionState{}, false
	}
	// A layer that carries TLS says so, whatever it is stacked with.
	if st, ok := tl.l.(tlsStater); ok {
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
