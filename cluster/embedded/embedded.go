// Package embedded runs a NATS server inside the process, for tests and
// for single-binary setups of a simplerpc cluster: nodes in the process
// connect to it without TCP ([Server.Connect]), nodes in other processes
// by its URL ([Server.URL]), as to any NATS server.
//
//	ns, _ := embedded.Start(ctx)                 // 127.0.0.1, a free port
//	defer ns.Close()
//	nc, _ := ns.Connect()                        // in-process
//	node, _ := cluster.New(nc, 1)
//	srv, _ := engine.NewServer(router, engine.WithBackend(node))
//
// The server requires credentials: a token, generated unless [WithToken]
// gives one ([Server.Token] reads it back, for the nodes of other
// processes), or the nkeys of [WithNKeys]. Whoever holds them can publish
// on every subject, forge any node's messages included (docs/CLUSTER.md,
// "Who may use the bus").
//
// It is a separate package so that programs that use an external NATS do
// not link the server. See docs/CLUSTER.md.
package embedded

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrNotReady is returned by [Start] when the server did not accept
// connections before the context's deadline (10s without one).
var ErrNotReady = errors.New("embedded: NATS server not ready")

// Option configures a [Server].
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	host   string
	port   int
	logger *slog.Logger
	token  string
	nkeys  []string
	tls    *tls.Config
}

// WithHost sets the address the server listens on for clients. Defaults
// to "127.0.0.1": only this machine.
func WithHost(host string) Option { return optionFunc(func(o *options) { o.host = host }) }

// WithPort sets the port the server listens on for clients. Defaults to 0,
// a port the system chooses (read it back with [Server.URL]); a server
// restarted on the port of an earlier one lets its clients reconnect.
func WithPort(port int) Option { return optionFunc(func(o *options) { o.port = port }) }

// WithLogger sets a logger for the server's notices, warnings and errors.
// Defaults to none: the server is silent.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(o *options) { o.logger = l }) }

// WithToken sets the token every client must present (nats.Token), for
// the nodes of other processes that share it. Defaults to a token of 32
// random bytes, generated at [Start] ([Server.Token]). Keep it out of
// command lines and logs: read it from a file or the environment.
func WithToken(token string) Option { return optionFunc(func(o *options) { o.token = token }) }

// WithNKeys makes the server accept only clients that prove they hold the
// seed of one of these user nkeys (public keys, "U..."; nats.Nkey or
// nats.NkeyOptionFromSeed on the client's side), instead of a token.
// Connections made by [Server.Connect] authenticate with an nkey of the
// server's own, made at [Start], that never leaves the process. Defaults to
// none: a token.
func WithNKeys(publicKeys ...string) Option {
	return optionFunc(func(o *options) { o.nkeys = append(o.nkeys, publicKeys...) })
}

// WithTLS makes the client port speak TLS only, with cfg, which needs a
// certificate; set cfg.ClientAuth to tls.RequireAndVerifyClientCert (and
// cfg.ClientCAs) to require client certificates as well. Connections made
// by [Server.Connect] do without: they never leave the process. Clients
// by [Server.URL] ("tls://...") verify the server (nats.RootCAs) and
// still present the credentials. Defaults to nil: plain TCP, for one
// machine; across machines a token in clear is only as safe as the
// network.
func WithTLS(cfg *tls.Config) Option { return optionFunc(func(o *options) { o.tls = cfg }) }

// Server is a NATS server running in the process.
//
// It is safe for concurrent use by multiple goroutines.
type Server struct {
	ns    *server.Server
	token string        // "" with nkeys
	self  nkeys.KeyPair // nil with a token: the in-process connections' nkey
}

// Start starts a NATS server and returns once it accepts connections, or
// fails with an error wrapping [ErrNotReady] when ctx ends first (10s
// without a deadline). It returns an error for an invalid option or a port
// in use.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	o := options{host: "127.0.0.1"}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.port < 0 || o.port > 65535 {
		return nil, fmt.Errorf("embedded: invalid port %d", o.port)
	}
	port := o.port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		Host:   o.host,
		Port:   port,
		NoLog:  o.logger == nil,
		NoSigs: true,
		// The HTTP monitor, clustering, gateways, leaf nodes and
		// JetStream stay off.
	}
	s := &Server{}
	if err := s.credentials(&o, sopts); err != nil {
		return nil, err
	}
	if o.tls != nil {
		if len(o.tls.Certificates) == 0 && o.tls.GetCertificate == nil {
			return nil, errors.New("embedded: WithTLS: the configuration has no certificate")
		}
		sopts.TLSConfig, sopts.TLS = o.tls, true
		sopts.TLSVerify = o.tls.ClientAuth == tls.RequireAndVerifyClientCert
		sopts.TLSTimeout = 5 // seconds, for a handshake
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if o.logger != nil {
		ns.SetLogger(slogAdapter{o.logger}, false, false)
	}
	wait := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	ns.Start()
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("embedded: listen on %s: %w", net.JoinHostPort(o.host, strconv.Itoa(o.port)), ErrNotReady)
	}
	s.ns = ns
	return s, nil
}

// credentials sets what the server requires of clients: the nkeys of o, or
// its token, or a new one.
func (s *Server) credentials(o *options, sopts *server.Options) error {
	if len(o.nkeys) > 0 {
		if o.token != "" {
			return errors.New("embedded: WithToken and WithNKeys: give one")
		}
		for _, k := range o.nkeys {
			if !nkeys.IsValidPublicUserKey(k) {
				return fmt.Errorf("embedded: WithNKeys: %q is not a user's public nkey (U...)", k)
			}
			sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: k})
		}
		self, err := nkeys.CreateUser()
		if err != nil {
			return fmt.Errorf("embedded: make the server's own nkey: %w", err)
		}
		pub, err := self.PublicKey()
		if err != nil {
			return fmt.Errorf("embedded: make the server's own nkey: %w", err)
		}
		sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: pub})
		s.self = self
		return nil
	}
	s.token = o.token
	if s.token == "" {
		var err error
		if s.token, err = NewToken(); err != nil {
			return err
		}
	} else if strings.HasPrefix(s.token, "$2") {
		// NATS would take it for a bcrypt hash of the token.
		return errors.New("embedded: WithToken: a token may not start with \"$2\"")
	}
	sopts.Authorization = s.token
	return nil
}

// NewToken returns a new token for [WithToken]: 32 random bytes, in
// unpadded base64url (43 characters). It is safe from any goroutine.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("embedded: make a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Token returns the token clients present, the one of [WithToken] or the
// one generated at [Start]; "" with [WithNKeys]. It is a secret: hand it to
// the other nodes by a file or the environment, never a command line or a
// log.
func (s *Server) Token() string { return s.token }

// URL returns the URL clients in other processes connect to,
// "nats://127.0.0.1:PORT", or "tls://127.0.0.1:PORT" with [WithTLS].
func (s *Server) URL() string { return s.ns.ClientURL() }

// Addr returns the address the server listens on for clients.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// Connect connects to the server in-process, through a pipe rather than
// TCP, with nats.go's options, and with the server's credentials (its
// token, or its own nkey). Such a connection cannot outlive the server:
// after [Server.Close] it closes for good (connect by [Server.URL] to
// reconnect to a server restarted on the same port).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	own := []nats.Option{nats.InProcessServer(s.ns)}
	if s.self != nil {
		pub, err := s.self.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("embedded: connect in-process: %w", err)
		}
		own = append(own, nats.Nkey(pub, s.self.Sign))
	} else {
		own = append(own, nats.Token(s.token))
	}
	nc, err := nats.Connect("", append(own, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("embedded: connect in-process: %w", err)
	}
	return nc, nil
}

// Close stops the server, disconnecting every client, and returns once it
// has stopped.
func (s *Server) Close() error {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
	return nil
}

// slogAdapter passes the server's log lines to a slog.Logger.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug("nats: " + fmt.Sprintf(format, v...)) }
