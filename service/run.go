// This file holds Run: the service's life from its listeners to its
// shutdown or its upgrade.

package service

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/simplerpc/simplerpc/engine"
)

// Run serves srv as a service until SIGTERM or SIGINT arrives or ctx
// ends, then shuts it down gracefully (within [WithShutdownGrace]); on
// Unix, SIGHUP upgrades it to a successor (see the package comment). It
// returns nil after a graceful shutdown and after a successful upgrade,
// once the successor serves and this process has let its connections go:
// the process should then exit 0. It returns an error, with srv shut down,
// when the server cannot start (no listener, an address in use, a bad
// option), when [WithOnReady]'s function fails, or when srv stops by
// itself (srv.Err).
//
// The functions of [WithStart], [WithShutdown], [WithOnReady] and
// [WithOnUpgrade] run on Run's goroutine, one at a time.
//
// srv must be new (not started): Run starts it on the sockets handed to
// the process (socket activation, or a predecessor's) or else on the
// addresses of [WithAddrs]; a successor adopts its predecessor's
// connections before it accepts. Run is meant to be called once per
// process: it reads and unsets the process's LISTEN_* variables and may
// set NOTIFY_SOCKET.
func Run(ctx context.Context, srv *engine.Server, opts ...Option) error {
	c, err := newConfig(srv, opts)
	if err != nil {
		return err
	}
	if !c.keepProcs {
		spareP(c.log, srv.EventLoops())
	}
	// The first SIGTERM or SIGINT asks for the graceful shutdown; a second
	// one kills the process as usual.
	sigCtx, stopSignals := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stopSignals()
	context.AfterFunc(sigCtx, stopSignals)
	// The server's own context ends when Run returns: Run shuts it down,
	// within its grace, rather than the engine on the signal.
	srvCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	next, err := adoptUpgrade()
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	lns, names, err := activated()
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if next != nil {
		if err := adoptConns(sigCtx, c, srv); err != nil {
			closeAll(lns)
			return fmt.Errorf("service: %w", err)
		}
	}
	nActivated := len(lns)
	if nActivated == 0 {
		// Run makes its listeners itself, rather than through
		// Server.Start, so as to hand them to a successor.
		if len(c.addrs) == 0 {
			return ErrNoListener
		}
		if lns, names, err = listenAll(sigCtx, c.addrs); err != nil {
			return fmt.Errorf("service: %w", err)
		}
	}
	if err := c.start(srvCtx, served(lns, names)...); err != nil {
		closeAll(lns)
		return fmt.Errorf("service: %w", err)
	}
	urls := make([]string, len(lns))
	for i, ln := range lns {
		urls[i] = listenerURL(ln, names[i])
	}
	for i, u := range urls[1:] {
		c.log.Info("also listening", "addr", u, "fd", 4+i)
	}
	attrs := append(append([]any{"addr", urls[0]}, c.logAttrs...), "activated", nActivated, "pid", os.Getpid())
	c.log.Info("listening", attrs...)
	hup, stopHup := upgradeSignal()
	defer stopHup()
	if c.onReady != nil {
		if err := c.onReady(sigCtx, urls); err != nil {
			_ = srv.Close()
			return err
		}
	}
	sd := startNotifier(c, srv, next)
	for {
		select {
		case <-sigCtx.Done():
			return shutdown(c, srv, sd)
		case <-srv.Done():
			if sigCtx.Err() != nil {
				// Asked, after all: the signal ended the server's own
				// context too, and select took this case at random.
				return shutdown(c, srv, sd)
			}
			// The server stopped without being asked (an accept error).
			sd.stopping()
			return fmt.Errorf("service: %w", srv.Err())
		case <-hup:
			if c.noUpgrade != "" {
				c.log.Warn("SIGHUP ignored: " + c.noUpgrade)
				continue
			}
			pid, err := upgrade(sigCtx, c, srv, lns, names)
			if err != nil {
				c.log.Error("upgrade failed; serving on", "err", err)
				if c.onUpgradeFail != nil {
					c.onUpgradeFail(sigCtx)
				}
				continue
			}
			sd.handOver(pid)
			return letGo(c, srv, pid)
		}
	}
}

// shutdown stops the server gracefully within the grace.
func shutdown(c *config, srv *engine.Server, sd *notifier) error {
	c.log.Info("shutting down", "conns", srv.Stats().Conns)
	sd.stopping()
	ctx, cancel := context.WithTimeout(context.Background(), c.shutdownGrace)
	defer cancel()
	if err := c.shutdown(ctx); err != nil {
		return fmt.Errorf("service: shutdown: %w", err)
	}
	c.log.Info("stopped")
	return nil
}

// letGo lets the successor pid take over: the connections left are told
// to go away and given the upgrade's grace to move, then the server shuts
// down.
func letGo(c *config, srv *engine.Server, pid int) error {
	c.log.Info("successor ready; going away", "pid", pid, "conns", srv.Stats().Conns, "grace", c.upgradeGrace)
	gctx, cancel := context.WithTimeout(context.Background(), c.upgradeGrace)
	defer cancel()
	if err := srv.GoAway(gctx, "upgrade"); err != nil {
		c.log.Warn("clients left after the grace are closed", "err", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), c.shutdownGrace)
	defer scancel()
	if err := c.shutdown(sctx); err != nil {
		return fmt.Errorf("service: shutdown after the upgrade: %w", err)
	}
	c.log.Info("upgraded", "pid", pid)
	return nil
}

// upgrade starts the successor on lns (named names, for LISTEN_FDNAMES),
// hands it the connections in Handover mode, and waits for its readiness;
// it returns the successor's pid.
func upgrade(ctx context.Context, c *config, srv *engine.Server, lns []net.Listener, names []string) (int, error) {
	c.log.Info("upgrading: starting the successor", "conns", srv.Stats().Conns)
	if c.onUpgrade != nil {
		c.onUpgrade(ctx)
	}
	uctx, cancel := context.WithTimeout(ctx, c.upgradeTimeout)
	defer cancel()
	var next successor
	if c.mode == Handover {
		mine, theirs, err := handoverPair()
		if err != nil {
			return 0, err
		}
		defer mine.Close()
		next = successor{handover: theirs, during: func() error {
			rep, err := srv.HandOver(uctx, mine)
			c.log.Info("upgrade: connections handed over", "conns", rep.HandedOver, "going_away", rep.GoneAway, "err", err)
			return err
		}}
	}
	return startSuccessor(uctx, c.log, lns, names, next)
}

// adoptConns adopts the connections a predecessor hands over, if this
// process is a successor started with a handover socket: before the
// server accepts, so that its new net ids start above theirs.
func adoptConns(ctx context.Context, c *config, srv *engine.Server) error {
	uc, err := handoverSocket()
	if err != nil || uc == nil {
		return err
	}
	defer uc.Close()
	actx, cancel := context.WithTimeout(ctx, c.upgradeTimeout)
	defer cancel()
	n, err := srv.Adopt(actx, uc)
	if err != nil {
		return err
	}
	c.log.Info("adopted the predecessor's connections", "conns", n)
	return nil
}
