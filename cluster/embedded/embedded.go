// Package embedded runs a NATS server inside the process, for tests and
// for single-binary setups of a simplerpc cluster: nodes in the process
// connect to it without TCP ([Server.Connect]), nodes in other processes
// by its URL ([Server.URL]), as to any NATS server.
//
//	ns, _ := embedded.Start(ctx)                 // 127.0.0.1, a free port
//	defer ns.Close()
//	nc, _ := ns.Connect()                        // in-process
//	node, _ := cluster.New(router, nc, 1)
//
// It is a separate package so that programs that use an external NATS do
// not link the server. See docs/CLUSTER.md.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
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

// Server is a NATS server running in the process.
//
// It is safe for concurrent use by multiple goroutines.
type Server struct {
	ns *server.Server
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
	ns, err := server.NewServer(&server.Options{
		Host:   o.host,
		Port:   port,
		NoLog:  o.logger == nil,
		NoSigs: true,
		// The HTTP monitor, clustering, gateways, leaf nodes and
		// JetStream stay off.
	})
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
	return &Server{ns: ns}, nil
}

// URL returns the URL clients in other processes connect to,
// "nats://127.0.0.1:PORT".
func (s *Server) URL() string { return s.ns.ClientURL() }

// Addr returns the address the server listens on for clients.
func (s *Server) Addr() net.Addr { return s.ns.Addr() }

// Connect connects to the server in-process, through a pipe rather than
// TCP, with nats.go's options. Such a connection cannot outlive the
// server: after [Server.Close] it closes for good (connect by
// [Server.URL] to reconnect to a server restarted on the same port).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s.ns)}, opts...)...)
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
