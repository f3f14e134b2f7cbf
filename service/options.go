// This file holds Run's options and their defaults.

package service

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/simplerpc/simplerpc/engine"
)

// UpgradeMode says what the live connections do on a SIGHUP upgrade.
type UpgradeMode int

const (
	// Handover moves the plain TCP and Unix connections to the successor
	// with their sockets and state: their peers see nothing. What cannot
	// move (TLS, WebSocket, calls still running after 2 s) is sent going
	// away (-8), as with GoAway.
	Handover UpgradeMode = iota
	// GoAway sends every connection going away (-8) once the successor is
	// ready: clients made with engine.WithReconnect move to it without
	// losing a frame.
	GoAway
)

// String returns "handover" or "goaway".
func (m UpgradeMode) String() string {
	switch m {
	case Handover:
		return "handover"
	case GoAway:
		return "goaway"
	}
	return fmt.Sprintf("UpgradeMode(%d)", int(m))
}

// Option configures Run.
type Option func(*config)

// config is Run's settings, the defaults filled in by newConfig.
type config struct {
	addrs          []string
	log            *slog.Logger
	shutdownGrace  time.Duration
	upgradeGrace   time.Duration
	upgradeTimeout time.Duration
	mode           UpgradeMode
	noUpgrade      string // why SIGHUP is ignored; "" when it upgrades
	status         func() string
	statusEvery    time.Duration
	logAttrs       []any
	start          func(ctx context.Context, lns ...net.Listener) error
	shutdown       func(ctx context.Context) error
	onReady        func(ctx context.Context, addrs []string) error
	onUpgrade      func(ctx context.Context)
	onUpgradeFail  func(ctx context.Context)
	keepProcs      bool // WithoutSpareP
}

// Defaults of the options.
const (
	defaultShutdownGrace  = 5 * time.Second
	defaultUpgradeGrace   = 10 * time.Second
	defaultUpgradeTimeout = 30 * time.Second
	defaultStatusEvery    = 5 * time.Second
)

func newConfig(srv *engine.Server, opts []Option) (*config, error) {
	c := &config{
		log:            slog.Default(),
		shutdownGrace:  defaultShutdownGrace,
		upgradeGrace:   defaultUpgradeGrace,
		upgradeTimeout: defaultUpgradeTimeout,
		statusEvery:    defaultStatusEvery,
		status:         func() string { return serving(srv.Len()) },
		start:          srv.StartOn,
		shutdown:       srv.Shutdown,
	}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.log == nil || c.status == nil || c.start == nil || c.shutdown == nil:
		return nil, fmt.Errorf("service: %w: a nil logger, status, start or shutdown function", ErrOption)
	case c.shutdownGrace <= 0 || c.upgradeGrace <= 0 || c.upgradeTimeout <= 0 || c.statusEvery <= 0:
		return nil, fmt.Errorf("service: %w: durations must be positive", ErrOption)
	case c.mode != Handover && c.mode != GoAway:
		return nil, fmt.Errorf("service: %w: %v", ErrOption, c.mode)
	}
	for _, a := range c.addrs {
		if _, _, err := parseAddr(a); err != nil {
			return nil, fmt.Errorf("service: %w: %w", ErrOption, err)
		}
	}
	return c, nil
}

// serving is the default status: "serving 3 connections", "serving 1
// connection".
func serving(n int) string {
	if n == 1 {
		return "serving 1 connection"
	}
	return fmt.Sprintf("serving %d connections", n)
}

// WithAddrs gives the addresses to listen on when no socket is handed over
// (socket activation, an upgrade): "host:port", tcp://, tcp4://, tcp6://,
// tls:// (TCP: the server's engine.WithTLS adds TLS), unix:///path (a
// socket left by an earlier run is removed first), ws://host:port/path and
// wss://host:port/path. Port 0 picks a free port. Defaults to none: Run
// fails with ErrNoListener unless it is socket-activated.
func WithAddrs(addrs ...string) Option {
	return func(c *config) { c.addrs = append([]string(nil), addrs...) }
}

// WithoutSpareP leaves GOMAXPROCS as it is. By default Run raises it to
// the server's event loops plus one when it is no higher and the
// GOMAXPROCS environment variable does not set it: with no P beside the
// loops, the acceptor, TLS handshakes and other goroutines wait for the Go
// scheduler up to 10-20 ms under load (OPERATIONS.md, "CPUs: a P beside
// the event loops").
func WithoutSpareP() Option { return func(c *config) { c.keepProcs = true } }

// WithLogger sets the logger of Run's life-cycle messages ("listening",
// "upgraded", ...). Defaults to slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithShutdownGrace bounds the graceful shutdown on SIGTERM, SIGINT or the
// end of Run's context, and the old process's after an upgrade: how long
// the frames already queued may take to go out before the connections are
// closed. Defaults to 5 s.
func WithShutdownGrace(d time.Duration) Option { return func(c *config) { c.shutdownGrace = d } }

// WithUpgrade sets what the live connections do on a SIGHUP upgrade.
// Defaults to Handover.
func WithUpgrade(m UpgradeMode) Option { return func(c *config) { c.mode = m } }

// WithoutUpgrade makes SIGHUP log "SIGHUP ignored: " and reason, and do
// nothing else: for a server that cannot have a successor beside it (a
// cluster node holds its node number). Defaults to upgrading.
func WithoutUpgrade(reason string) Option {
	return func(c *config) {
		c.noUpgrade = reason
		if reason == "" {
			c.noUpgrade = "upgrades are off"
		}
	}
}

// WithUpgradeTimeout bounds an upgrade: how long the successor may take to
// adopt the connections and say READY=1 before it is killed and this
// process serves on; it bounds the successor's adoption too. Defaults to
// 30 s.
func WithUpgradeTimeout(d time.Duration) Option { return func(c *config) { c.upgradeTimeout = d } }

// WithUpgradeGrace sets how long, once the successor is ready, the
// connections left on the old process (those sent going away) have to
// leave before they are closed. Defaults to 10 s.
func WithUpgradeGrace(d time.Duration) Option { return func(c *config) { c.upgradeGrace = d } }

// WithStatus sets the text of the STATUS= notification, sent at readiness
// and every interval; fn is called from Run's goroutines. Defaults to
// "serving N connections" ("1 connection") every 5 s.
func WithStatus(fn func() string, every time.Duration) Option {
	return func(c *config) { c.status, c.statusEvery = fn, every }
}

// WithLogAttrs adds attributes (slog's key-value pairs) to the
// "listening" log line, after its address. Defaults to none.
func WithLogAttrs(args ...any) Option {
	return func(c *config) { c.logAttrs = append([]any(nil), args...) }
}

// WithStart replaces srv.StartOn, for an application that does more
// around the start (serve names a taken cluster node number, and logs the
// join). fn must start srv on lns. Its context ends when Run returns.
// Defaults to srv.StartOn.
func WithStart(fn func(ctx context.Context, lns ...net.Listener) error) Option {
	return func(c *config) { c.start = fn }
}

// WithShutdown replaces srv.Shutdown, for an application that does more
// around the stop; fn must shut srv down within ctx. Defaults to
// srv.Shutdown.
func WithShutdown(fn func(ctx context.Context) error) Option {
	return func(c *config) { c.shutdown = fn }
}

// WithOnReady runs fn once the server accepts, before READY=1, with the
// addresses it serves as clients dial them ("127.0.0.1:4000",
// "ws://127.0.0.1:8080/rpc", "unix:///run/app.sock"): to open what the
// service needs beside the protocol (a metrics listener). An error stops
// the server, and Run returns it. Defaults to none.
func WithOnReady(fn func(ctx context.Context, addrs []string) error) Option {
	return func(c *config) { c.onReady = fn }
}

// WithOnUpgrade runs before when an upgrade begins, before the successor
// starts, to free what the successor will take (a metrics port), and
// failed when the upgrade has failed and this process serves on, to take
// it back. Either may be nil. Defaults to none.
func WithOnUpgrade(before, failed func(ctx context.Context)) Option {
	return func(c *config) { c.onUpgrade, c.onUpgradeFail = before, failed }
}
