// This file holds Run's notifications to the service manager (sd_notify):
// readiness, status, watchdog pings while every event loop answers, and
// stopping or the new main process after an upgrade.

package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/simplerpc/simplerpc/engine"
)

// notifier speaks sd_notify to the service manager, if NOTIFY_SOCKET is
// set; without it every message is dropped (daemon.SdNotify sends
// nothing).
type notifier struct {
	log    *slog.Logger
	srv    *engine.Server
	status func() string
	stop   chan struct{}
	wg     sync.WaitGroup
}

// notify sends state; a failure is logged, since the server runs anyway.
func (n *notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// startNotifier says READY=1, with the status, and starts the status and
// watchdog goroutines, which stopping or handOver stop. A successor says
// READY=1 to its predecessor (the NOTIFY_SOCKET it was given) and then
// speaks to the service manager, if any (next).
func startNotifier(c *config, srv *engine.Server, next *nextNotify) *notifier {
	n := &notifier{log: c.log, srv: srv, status: c.status, stop: make(chan struct{})}
	n.notify(daemon.SdNotifyReady + "\nSTATUS=" + n.status())
	next.restore()
	n.wg.Add(1)
	go n.statusLoop(c.statusEvery)
	if wd, err := daemon.SdWatchdogEnabled(false); err != nil {
		n.log.Warn("watchdog", "err", err)
	} else if wd > 0 {
		n.log.Info("watchdog enabled", "interval", wd)
		n.wg.Add(1)
		go n.watchdogLoop(wd)
	}
	return n
}

// nextNotify is the NOTIFY_SOCKET of the service manager, for a successor
// whose own NOTIFY_SOCKET is its predecessor's: nil when there is no
// predecessor, an empty socket when there is no service manager.
type nextNotify struct {
	socket string
}

// restore makes NOTIFY_SOCKET the service manager's again, or unsets it.
func (nn *nextNotify) restore() {
	switch {
	case nn == nil:
	case nn.socket == "":
		_ = os.Unsetenv("NOTIFY_SOCKET")
	default:
		_ = os.Setenv("NOTIFY_SOCKET", nn.socket)
	}
}

func (n *notifier) statusLoop(every time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.notify("STATUS=" + n.status())
		}
	}
}

// watchdogLoop pings every half of the watchdog interval, and only after
// a task went through every event loop and came back (Host.Backlog)
// within a quarter of it: a stuck loop stops the pings, and the service
// manager restarts the server.
func (n *notifier) watchdogLoop(wd time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(wd / 2)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wd/4)
		_, err := n.srv.Host().Backlog(ctx)
		cancel()
		if err == nil {
			n.notify(daemon.SdNotifyWatchdog)
		} else {
			n.log.Warn("an event loop did not answer; no watchdog ping", "err", err)
		}
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
	}
}

// halt stops the goroutines.
func (n *notifier) halt() {
	close(n.stop)
	n.wg.Wait()
}

// stopping says STOPPING=1 and stops the goroutines.
func (n *notifier) stopping() {
	n.halt()
	n.notify(daemon.SdNotifyStopping)
}

// handOver stops the goroutines and tells the service manager that pid,
// the successor, is the service's main process now (MAINPID=; the unit
// needs NotifyAccess=all for the successor's own messages). It says no
// STOPPING=1: the service goes on.
func (n *notifier) handOver(pid int) {
	n.halt()
	n.notify(fmt.Sprintf("MAINPID=%d\nSTATUS=upgraded: serving from pid %d", pid, pid))
}
