package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Opcodes of the demo server.
const (
	opEcho      = 0 // echoed to the sender on opcode 0
	opBroadcast = 1 // sent to every connection on opcode 1
)

// shutdownGrace bounds how long serve waits for queued frames on exit.
const shutdownGrace = 5 * time.Second

// serveOptions are serve's flags.
type serveOptions struct {
	addr      string
	size      int
	maxSize   int
	loops     int
	maxConns  int
	logFormat string
	quiet     bool
	verbose   bool
	limits    limitOptions
	tls       serverTLSOptions
	metrics   string // --metrics-addr
}

// newServeCmd builds the serve subcommand.
func newServeCmd(wrap runWrapper) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a demo server: echo on opcode 0, send-to-all on opcode 1",
		Long: `serve runs a demo server until SIGINT or SIGTERM.

Opcode 0 echoes the JSON object back to its sender on opcode 0; opcode 1
sends it to every connection, the sender included, on opcode 1. Calls
(request frames, see "simplerpc call --request") on opcode 0 are answered
with the same object. Connects and disconnects are logged on stderr; the
first log line, "listening addr=...", gives the address actually bound,
which matters with port 0.

The limit flags (--idle-timeout, --rate-limit, --max-outbound, --keepalive,
--write-deadline, --frame-deadline, --max-malformed, --max-conns) map to the
engine's options of the same names, and their defaults are the engine's: a
server started without them is as hardened as the library makes it.

Under systemd, serve uses the sockets it is handed (LISTEN_FDS) instead
of --addr, and speaks sd_notify when NOTIFY_SOCKET is set: READY=1,
STATUS= with the connection count, WATCHDOG=1 while its event loops
answer, STOPPING=1 (docs/OPERATIONS.md).`,
		Example: `  simplerpc serve --addr 127.0.0.1:30000 --size 256
  simplerpc serve --addr 127.0.0.1:0 --log-format json --quiet`,
		Args: cobra.NoArgs,
		RunE: wrap(func(cmd *cobra.Command, _ []string) error {
			o.limits.outboundSet = cmd.Flags().Changed("max-outbound")
			return serve(cmd.Context(), cmd.ErrOrStderr(), o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "address to listen on: host:port, tcp://host:port, tls://host:port (with --tls-cert) or unix:///path (port 0 picks a free port)")
	f.IntVar(&o.size, "size", 1024, "message size in bytes: every frame has this size")
	f.IntVar(&o.maxSize, "max-size", 0, "largest message size a client may ask for with a -2 frame, in bytes (0: --size; at most 16 MiB)")
	f.IntVar(&o.loops, "loops", 1, "number of event loops")
	f.IntVar(&o.maxConns, "max-conns", 0, "connection limit (0: the file-descriptor limit less 512; a larger value is clamped to it, with a warning in the log)")
	addLimitFlags(f, &o.limits)
	addServerTLSFlags(f, &o.tls)
	f.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus /metrics and /debug/pprof/ on this host:port, apart from the protocol's (none if empty; keep it private)")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&o.quiet, "quiet", false, "do not log connects and disconnects")
	f.BoolVar(&o.verbose, "verbose", false, "log the engine's debug messages too")
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// newLogger returns a slog logger writing to w in format ("text" or
// "json"), at debug level when verbose.
func newLogger(w io.Writer, format string, verbose bool) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		opts.Level = slog.LevelDebug
	}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}

// serve runs the demo server until ctx ends.
func serve(ctx context.Context, stderr io.Writer, o serveOptions) error {
	log, err := newLogger(stderr, o.logFormat, o.verbose)
	if err != nil {
		return err
	}
	if err := checkAddr(o.addr, true); err != nil {
		return err
	}
	if o.maxSize == 0 {
		o.maxSize = max(o.size, codec.MinMessageSize) // the engine's default: a server's bounds are its own
	}
	if err := checkSizes(o.size, o.maxSize); err != nil {
		return err
	}
	if o.loops <= 0 || o.maxConns < 0 {
		return usagef("--loops must be positive, --max-conns not negative")
	}
	limits, err := o.limits.serverOptions(o.maxSize)
	if err != nil {
		return err
	}
	tlsOpts, err := o.tls.serverOptions(o.addr)
	if err != nil {
		return err
	}
	limits = append(limits, tlsOpts...)
	if o.metrics != "" {
		if err := checkMetricsAddr(o.metrics, o.addr); err != nil {
			return err
		}
	}
	soft, _ := fdLimit()
	o.maxConns = clampMaxConns(log, o.maxConns, soft)
	srv, err := newDemoServer(log, o, limits...)
	if err != nil {
		return usageError{err: err} // only option values can fail here
	}
	lns, err := activatedListeners()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if len(lns) > 0 {
		// The service manager's sockets replace --addr.
		if err := srv.StartOn(ctx, lns...); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		for i, ln := range lns[1:] {
			log.Info("also listening", "addr", listenAddr(ln.Addr()), "fd", 4+i)
		}
	} else if err := srv.Start(ctx, o.addr); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("listening", "addr", listenAddr(srv.Addr()), "size", o.size, "loops", o.loops, "tls", o.tls.describe(),
		"activated", len(lns))
	var ms *metricsServer
	if o.metrics != "" {
		if ms, err = startMetrics(log, srv, o.metrics); err != nil {
			_ = srv.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	sd := startNotifier(log, srv)
	// The engine shuts down on its own when ctx ends; Shutdown waits for it.
	select {
	case <-ctx.Done():
	case <-srv.Done():
		// The event loop stopped without being asked (an accept error).
		sd.stopping()
		_ = ms.shutdown(context.Background())
		return fmt.Errorf("serve: %w", srv.Err())
	}
	log.Info("shutting down", "conns", srv.Stats().Conns)
	sd.stopping()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	// The metrics go last, so that a scrape sees the shutdown.
	if merr := ms.shutdown(sctx); merr != nil && err == nil {
		err = merr
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// listenAddr returns a as --addr takes it.
func listenAddr(a net.Addr) string {
	if a.Network() == "unix" {
		return "unix://" + a.String()
	}
	return a.String()
}

// checkSizes rejects a --size or --max-size the engine would refuse, naming
// the flag to change.
func checkSizes(size, maxSize int) error {
	switch {
	case maxSize < codec.MinMessageSize || maxSize > codec.MaxMessageSize:
		return usagef("--max-size %d must lie within %d..%d bytes", maxSize, codec.MinMessageSize, codec.MaxMessageSize)
	case size < codec.MinMessageSize:
		return usagef("--size %d is below the smallest message size, %d bytes", size, codec.MinMessageSize)
	case size > maxSize:
		return usagef("--size %d is larger than --max-size %d: raise --max-size (up to %d)", size, maxSize, codec.MaxMessageSize)
	}
	return nil
}

// newDemoServer builds the echo and send-to-all server;
// extra are further options: the limits.
func newDemoServer(log *slog.Logger, o serveOptions, extra ...engine.ServerOption) (*engine.Server, error) {
	r := handler.NewRouter(handler.WithLogger(log))
	var srv *engine.Server
	// SendRaw copies data, which is borrowed, before it returns.
	r.On(opEcho, func(c handler.Conn, data []byte) error {
		return c.SendRaw(opEcho, data)
	})
	r.OnCall(opEcho, func(_ handler.Conn, data []byte) (any, error) {
		return json.RawMessage(append([]byte(nil), data...)), nil
	})
	r.On(opBroadcast, func(_ handler.Conn, data []byte) error {
		// SendAll encodes the object once, before it returns.
		return srv.SendAll(opBroadcast, json.RawMessage(data))
	})
	opts := []engine.ServerOption{
		engine.WithMessageSize(o.size),
		engine.WithSizeBounds(codec.MinMessageSize, o.maxSize),
		engine.WithEventLoops(o.loops),
		engine.WithLogger(log),
	}
	if !o.quiet {
		opts = append(opts,
			engine.WithOnConnect(func(c handler.Conn) {
				log.Info("connect", "conn", c.ID(), "remote", c.RemoteAddr())
			}),
			engine.WithOnDisconnect(func(c handler.Conn, reason error) {
				log.Info("disconnect", "conn", c.ID(), "remote", c.RemoteAddr(), "reason", reason.Error())
			}))
	}
	if o.maxConns > 0 {
		opts = append(opts, engine.WithMaxConns(o.maxConns))
	}
	opts = append(opts, extra...)
	var err error
	srv, err = engine.NewServer(r, opts...)
	return srv, err
}
