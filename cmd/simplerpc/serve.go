package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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
	addrs     []string // --addr, repeated
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
	pprof     bool   // --pprof
	cluster   clusterOptions

	upgradeTimeout time.Duration // --upgrade-timeout
	grace          time.Duration // --grace
	upgradeMode    string        // --upgrade: handover or goaway
}

// newServeCmd builds the serve subcommand.
func newServeCmd(wrap runWrapper) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a demo server: echo on opcode 0, send-to-all on opcode 1, relay by net id on opcode 2",
		Long: `serve runs a demo server until SIGINT or SIGTERM.

Opcode 0 echoes the JSON object back to its sender on opcode 0; opcode 1
sends it to every connection, the sender included, on opcode 1. Calls
(request frames, see "simplerpc call --request") on opcode 0 are answered
with the same object. Connects and disconnects are logged on stderr; the
first log line, "listening addr=...", gives the address actually bound,
which matters with port 0.

--addr may repeat: one server, with one set of net ids, serves every
address, so a send to all on opcode 1 reaches TCP and WebSocket clients
alike. ws://host:port/path serves WebSocket (RFC 6455, subprotocol
simplerpc) at path, one protocol frame per message, for browsers;
wss://host:port/path is the same under TLS and needs --tls-cert and
--tls-key. With the TLS flags, host:port, tcp:// and tls:// addresses are
TLS, ws:// ones stay plain WebSocket. A browser's upgrade is accepted only
from a page of the same host (its Origin), or with no Origin. The lines
"also listening addr=..." give the other addresses (docs/WEBSOCKET.md).

Opcode 2 relays: {"to": N, "data": {...}} sends data on opcode 2 to the
connection with net id N, or answers the sender with a failure frame,
reason "UnknownConn", when N is not connected. Opcode 3 tells a connection
who it is: a call (or a frame, answered with a frame) on opcode 3 gets
{"net_id": N, "node": "NAME"}, NAME being --node.

With --cluster nats://HOST:PORT --node NAME, serve is one node of a
cluster over NATS (docs/CLUSTER.md): opcode 1 reaches every connection of
every node, opcode 2 reaches net id N on whatever node holds it, and the
"UnknownConn" failure comes back when N is connected nowhere. --cluster
embedded starts a NATS server inside this process on a free 127.0.0.1 port
(embedded:PORT for a given one), logged as "embedded NATS listening
url=...": the other nodes join with --cluster set to that URL and its
token (--cluster-token-file, created by the first; docs/CLUSTER.md §9 has
NATS's other credentials and TLS). Node names
are 1 to 64 letters, digits, '.', '-' or '_'; the node number, unique in
the cluster, is derived from the name unless --node-number is given. A
node logs "joined the cluster", then "node up" and "node down" for the
others (a node killed is noticed within 4s: the heartbeat timeout, 3s,
plus an interval). SIGHUP does not upgrade a node: it is logged and
ignored.

The limit flags (--idle-timeout, --rate-limit, --max-outbound, --keepalive,
--write-deadline, --frame-deadline, --max-malformed, --max-conns) map to the
engine's options of the same names, and their defaults are the engine's: a
server started without them is as hardened as the library makes it.

Under systemd, serve uses the sockets it is handed (LISTEN_FDS) instead
of --addr, and speaks sd_notify when NOTIFY_SOCKET is set: READY=1,
STATUS= with the connection count, WATCHDOG=1 while its event loops
answer, STOPPING=1 (docs/OPERATIONS.md).

On SIGHUP (Unix), serve upgrades itself without dropping a connection: it
starts its successor, the binary now at its own path with the same flags,
hands it the listening sockets (LISTEN_FDS, as socket activation does),
and waits up to --upgrade-timeout for the successor's READY=1 (the
sockets' names, LISTEN_FDNAMES, tell it which is WebSocket at which path:
"ws/rpc", "wss/rpc"; a socket unit names one so with
FileDescriptorName=ws/rpc).

With --upgrade handover (the default), the live connections move too: the
old process stops accepting, and hands each plain TCP or Unix connection,
its socket and its state (net id, message size, the bytes it had read but
not handled), to the successor over a socketpair the successor inherits;
the successor adopts them all before it says READY=1. The peers see
nothing: no close, no reconnect, no lost frame. A connection that cannot
move (TLS, WebSocket, a call still running after 2 s) is sent "going away"
(-8) instead, as with --upgrade goaway.

With --upgrade goaway, every connection is sent "going away" (-8) once the
successor is ready: clients of this library made with WithReconnect move
to the successor without losing a frame.

After --grace the connections left on the old process are closed, and it
exits 0. If the successor fails or is not ready in time, the old process
goes on serving (with the connections the successor had not taken) and
logs why. Under systemd it tells the service manager the new MAINPID (the
unit needs NotifyAccess=all). --metrics-addr is closed while the successor
starts, and opened again if it fails.`,
		Example: `  simplerpc serve --addr 127.0.0.1:30000 --size 256
  simplerpc serve --addr 127.0.0.1:30000 --addr ws://127.0.0.1:8080/rpc
  simplerpc serve --addr wss://0.0.0.0:8443/rpc --tls-cert cert.pem --tls-key key.pem
  simplerpc serve --addr 127.0.0.1:0 --log-format json --quiet
  simplerpc serve --addr 127.0.0.1:30001 --cluster embedded:4222 --node a --cluster-token-file token
  simplerpc serve --addr 127.0.0.1:30002 --cluster nats://127.0.0.1:4222 --node b --cluster-token-file token`,
		Args: cobra.NoArgs,
		RunE: wrap(func(cmd *cobra.Command, _ []string) error {
			o.limits.outboundSet = cmd.Flags().Changed("max-outbound")
			return serve(cmd.Context(), cmd.ErrOrStderr(), o)
		}),
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.addrs, "addr", []string{defaultAddr}, "address to listen on, repeatable: host:port, tcp://host:port, tls://host:port (with --tls-cert), ws://host:port/path, wss://host:port/path (with --tls-cert) or unix:///path (port 0 picks a free port)")
	f.IntVar(&o.size, "size", 1024, "message size in bytes: every frame has this size")
	f.IntVar(&o.maxSize, "max-size", 0, "largest message size a client may ask for with a -2 frame, in bytes (0: --size; at most 16 MiB)")
	f.IntVar(&o.loops, "loops", 1, "number of event loops")
	f.IntVar(&o.maxConns, "max-conns", 0, "connection limit (0: the file-descriptor limit less 512; a larger value is clamped to it, with a warning in the log)")
	addLimitFlags(f, &o.limits)
	addServerTLSFlags(f, &o.tls)
	addClusterFlags(f, &o.cluster)
	f.StringVar(&o.metrics, "metrics-addr", "", "serve Prometheus /metrics on this host:port, apart from the protocol's (none if empty; :PORT binds 127.0.0.1, 0.0.0.0:PORT every interface)")
	f.BoolVar(&o.pprof, "pprof", false, "serve Go's profiles at /debug/pprof/ on --metrics-addr too (keep it private)")
	f.DurationVar(&o.upgradeTimeout, "upgrade-timeout", 30*time.Second, "on SIGHUP, how long to wait for the successor's readiness before giving up the upgrade and serving on")
	f.StringVar(&o.upgradeMode, "upgrade", "handover", "on SIGHUP, what the connections do: handover (the successor takes them, their peers see nothing) or goaway (they are told to reconnect, -8)")
	f.DurationVar(&o.grace, "grace", 10*time.Second, "on SIGHUP, how long to wait for clients to move to the successor before closing the connections left")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	f.BoolVar(&o.quiet, "quiet", false, "do not log connects and disconnects")
	f.BoolVar(&o.verbose, "verbose", false, "log the engine's debug messages too")
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// newLogger returns a slog logger writing to w in format ("text" or
// "json"), at debug level when verbose.
func newLogger(w io.Writer, format string, verbose bool) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: durationsAsText}
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
	for _, a := range o.addrs {
		if err := checkAddr(a, true); err != nil {
			return err
		}
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
	if o.upgradeTimeout <= 0 || o.grace <= 0 {
		return usagef("--upgrade-timeout and --grace must be positive")
	}
	if o.upgradeMode != "handover" && o.upgradeMode != "goaway" {
		return usagef("--upgrade %q: want handover or goaway", o.upgradeMode)
	}
	limits, err := o.limits.serverOptions(o.maxSize)
	if err != nil {
		return err
	}
	tlsOpts, err := o.tls.serverOptions(tlsAddr(o.addrs))
	if err != nil {
		return err
	}
	limits = append(limits, tlsOpts...)
	if o.pprof && o.metrics == "" {
		return usagef("--pprof needs --metrics-addr: the profiles are served there")
	}
	if o.metrics != "" {
		for _, a := range o.addrs {
			if err := checkMetricsAddr(o.metrics, a); err != nil {
				return err
			}
		}
	}
	soft, _ := fdLimit()
	o.maxConns = clampMaxConns(log, o.maxConns, soft)
	b, err := joinBus(ctx, log, o.cluster)
	if err != nil {
		return err
	}
	defer b.close()
	d, err := newDemoServer(log, o, b, limits...)
	if err != nil {
		return usageError{err: err} // only option values can fail here
	}
	srv := d.srv
	next, err := adoptUpgrade()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	lns, names, err := activatedListeners()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := adoptConns(ctx, log, o, srv, next != nil); err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return fmt.Errorf("serve: %w", err)
	}
	activated := len(lns)
	if activated == 0 {
		// serve makes its listeners itself, rather than through
		// Server.Start, so as to hand them to a successor.
		if lns, names, err = listenAll(ctx, o.addrs); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	// The service manager's sockets, or a predecessor's, replace --addr;
	// their names say which speak WebSocket (wsaddr.go).
	if err := d.startOn(ctx, log, servedListeners(lns, names)...); err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return fmt.Errorf("serve: %w", err)
	}
	for i, ln := range lns[1:] {
		log.Info("also listening", "addr", listenerURL(ln, names[i+1]), "fd", 4+i)
	}
	bufOut, bufIn, bufFrom := srv.MaxBuffered()
	log.Info("listening", "addr", listenerURL(lns[0], names[0]), "size", o.size, "loops", o.loops, "tls", o.tls.describe(),
		"activated", activated, "pid", os.Getpid(), "max_buffered", bufOut+bufIn, "max_buffered_from", bufFrom)
	var ms *metricsServer
	if o.metrics != "" {
		if ms, err = startMetrics(log, srv, o.metrics, o.pprof); err != nil {
			_ = srv.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	sd := startNotifier(log, srv, next)
	hup, stopHup := upgradeSignal()
	defer stopHup()
	// The engine shuts down on its own when ctx ends; Shutdown waits for it.
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-srv.Done():
			// The event loop stopped without being asked (an accept error).
			sd.stopping()
			_ = ms.shutdown(context.Background())
			return fmt.Errorf("serve: %w", srv.Err())
		case <-hup:
			if !d.upgradable() {
				log.Warn("SIGHUP ignored: a cluster node does not upgrade itself")
				continue
			}
			var pid int
			if pid, ms, err = upgrade(ctx, log, o, srv, lns, names, ms); err != nil {
				log.Error("upgrade failed; serving on", "err", err)
				continue
			}
			sd.handOver(pid)
			return handOver(log, o, srv, pid)
		}
	}
	log.Info("shutting down", "conns", srv.Stats().Conns)
	sd.stopping()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = d.shutdown(sctx)
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

// upgrade starts the successor on lns (named names, for LISTEN_FDNAMES)
// and waits for its readiness. The metrics server is closed meanwhile, its
// address being the successor's too; upgrade returns it running again when
// the successor fails, and nil otherwise.
func upgrade(ctx context.Context, log *slog.Logger, o serveOptions, srv *engine.Server, lns []net.Listener,
	names []string, ms *metricsServer) (int, *metricsServer, error) {
	log.Info("upgrading: starting the successor", "conns", srv.Stats().Conns)
	if ms != nil {
		sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
		_ = ms.shutdown(sctx)
		cancel()
	}
	uctx, cancel := context.WithTimeout(ctx, o.upgradeTimeout)
	defer cancel()
	var next successor
	if o.upgradeMode == "handover" {
		mine, theirs, err := handoverPair()
		if err != nil {
			return 0, ms, err
		}
		defer mine.Close()
		next = successor{handover: theirs, during: func() error {
			rep, err := srv.HandOver(uctx, mine)
			log.Info("upgrade: connections handed over", "conns", rep.HandedOver, "going_away", rep.GoneAway, "err", err)
			return err
		}}
	}
	pid, err := startSuccessor(uctx, log, lns, names, next)
	if err == nil {
		return pid, nil, nil
	}
	if ms != nil {
		var merr error
		if ms, merr = startMetrics(log, srv, o.metrics, o.pprof); merr != nil {
			log.Error("metrics not served again", "err", merr)
		}
	}
	return 0, ms, err
}

// handOver lets the successor pid take over: every connection is told to
// go away and given --grace to move, then the server shuts down.
func handOver(log *slog.Logger, o serveOptions, srv *engine.Server, pid int) error {
	log.Info("successor ready; going away", "pid", pid, "conns", srv.Stats().Conns, "grace", o.grace)
	gctx, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	if err := srv.GoAway(gctx, "upgrade"); err != nil {
		log.Warn("clients left after --grace are closed", "err", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("upgraded", "pid", pid)
	return nil
}

// adoptConns adopts the connections a predecessor hands over, if this
// process is a successor started with a handover socket: before the
// server accepts, so that its new net ids start above theirs.
func adoptConns(ctx context.Context, log *slog.Logger, o serveOptions, srv *engine.Server, successor bool) error {
	if !successor {
		return nil
	}
	uc, err := handoverSocket()
	if err != nil || uc == nil {
		return err
	}
	defer uc.Close()
	actx, cancel := context.WithTimeout(ctx, o.upgradeTimeout)
	defer cancel()
	n, err := srv.Adopt(actx, uc)
	if err != nil {
		return err
	}
	log.Info("adopted the predecessor's connections", "conns", n)
	return nil
}

// listenOn opens the listener for --addr: "host:port", "tcp://",
// "tcp4://", "tcp6://", "tls://" (TCP; the server adds TLS) or
// "unix:///path", where a socket left by an earlier run is removed first.
func listenOn(ctx context.Context, addr string) (net.Listener, error) {
	network, address, ok := strings.Cut(addr, "://")
	switch {
	case !ok:
		network, address = "tcp", addr
	case network == "tls":
		network = "tcp"
	case network == "unix":
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(address)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
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

// newDemoServer builds the echo, send-to-all and relay server, a node of
// b's cluster unless b is nil; extra are further options: the limits.
func newDemoServer(log *slog.Logger, o serveOptions, b *bus, extra ...engine.ServerOption) (*demo, error) {
	r := handler.NewRouter(handler.WithLogger(log))
	d := &demo{name: o.cluster.name}
	// SendRaw copies data, which is borrowed, before it returns.
	r.On(opEcho, func(c handler.Conn, data []byte) error {
		return c.SendRaw(opEcho, data)
	})
	r.OnCall(opEcho, func(_ handler.Conn, data []byte) (any, error) {
		return json.RawMessage(append([]byte(nil), data...)), nil
	})
	r.On(opBroadcast, func(_ handler.Conn, data []byte) error {
		return d.sendAll(opBroadcast, data)
	})
	d.addRouteOps(r)
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
	return d, d.build(log, r, b, opts)
}
