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
	"github.com/simplerpc/simplerpc/service"
)

// Opcodes of the demo server.
const (
	opEcho      = 0 // echoed to the sender on opcode 0
	opBroadcast = 1 // sent to every connection on opcode 1
)

// shutdownGrace bounds how long serve waits for queued frames on exit, and
// for the metrics server to stop.
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

Opcodes 4 and 5 are groups (rooms): {"group": NAME} on opcode 4 makes the
sender a member of NAME (1 to 128 bytes) until it disconnects;
{"group": NAME, "data": {...}} on opcode 5 sends data on opcode 5 to
every member of NAME, the sender too if it joined. The handlers use the
server's plain API (engine.ServerOf(c).Group(NAME)), unchanged with
--cluster.

With --cluster nats://HOST:PORT --node NAME, serve is one node of a
cluster over NATS (docs/CLUSTER.md): opcode 1 reaches every connection of
every node, opcode 2 reaches net id N on whatever node holds it, and the
"UnknownConn" failure comes back when N is connected nowhere; opcode 5
reaches the group's members on every node. --cluster
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
old process stops accepting, and hands each plain TCP, Unix or ws://
connection, its socket and its state (net id, message size, groups, the
bytes it had read but not handled, a WebSocket's framing), to the
successor over a socketpair the successor inherits;
the successor adopts them all before it says READY=1. The peers see
nothing: no close, no reconnect, no lost frame. A connection that cannot
move (TLS and wss://, a call still running after 2 s) is sent "going
away" (-8) instead, as with --upgrade goaway. Opcode 1's sends to all made
meanwhile reach every connection once and in order, whether it has moved
yet or not.

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

// serve runs the demo server until ctx ends, as a service (package
// service): socket activation, sd_notify, the upgrade on SIGHUP.
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
	mode := service.Handover
	switch o.upgradeMode {
	case "handover":
	case "goaway":
		mode = service.GoAway
	default:
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
	bufOut, bufIn, bufFrom := d.srv.MaxBuffered()
	opts := []service.Option{
		service.WithAddrs(o.addrs...), // unless systemd or a predecessor hands sockets over
		service.WithLogger(log),
		service.WithLogAttrs("size", o.size, "loops", o.loops, "tls", o.tls.describe(),
			"max_buffered", bufOut+bufIn, "max_buffered_from", bufFrom),
		service.WithShutdownGrace(shutdownGrace),
		service.WithUpgrade(mode),
		service.WithUpgradeTimeout(o.upgradeTimeout),
		service.WithUpgradeGrace(o.grace),
		service.WithStart(func(ctx context.Context, lns ...net.Listener) error { return d.startOn(ctx, log, lns...) }),
	}
	if !d.upgradable() {
		opts = append(opts, service.WithoutUpgrade("a cluster node does not upgrade itself"))
	}
	// The metrics listener opens before READY=1, and closes while a
	// successor starts (it binds the same address).
	var ms *metricsServer
	if o.metrics != "" {
		opts = append(opts,
			service.WithOnReady(func(context.Context, []string) error {
				var merr error
				ms, merr = startMetrics(log, d.srv, o.metrics, o.pprof)
				return merr
			}),
			service.WithOnUpgrade(func(ctx context.Context) {
				sctx, cancel := context.WithTimeout(ctx, shutdownGrace)
				defer cancel()
				_ = ms.shutdown(sctx)
				ms = nil
			}, func(context.Context) {
				var merr error
				if ms, merr = startMetrics(log, d.srv, o.metrics, o.pprof); merr != nil {
					log.Error("metrics not served again", "err", merr)
				}
			}))
	}
	err = service.Run(ctx, d.srv, opts...)
	// The metrics go last, so that a scrape sees the shutdown.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if merr := ms.shutdown(sctx); merr != nil && err == nil {
		err = merr
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
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
	addGroupOps(r)
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
