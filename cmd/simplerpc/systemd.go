package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/simplerpc/simplerpc/engine"
)

// statusInterval is how often serve tells the service manager its
// connection count (STATUS=).
const statusInterval = 5 * time.Second

// activatedListeners returns the sockets the service manager handed to
// this process (LISTEN_FDS, LISTEN_PID), or nil when there are none. It
// unsets the variables, so that no child takes them for its own.
func activatedListeners() ([]net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	for i, ln := range lns {
		if ln == nil {
			for _, l := range lns {
				if l != nil {
					_ = l.Close()
				}
			}
			return nil, fmt.Errorf("socket activation: descriptor %d is not a TCP or Unix stream listener", 3+i)
		}
	}
	return lns, nil
}

// notifier speaks sd_notify to the service manager, if NOTIFY_SOCKET is
// set: readiness, status, watchdog pings and stopping. Without it every
// method does nothing.
type notifier struct {
	log  *slog.Logger
	srv  *engine.Server
	stop chan struct{}
	wg   sync.WaitGroup
}

// notify sends state; a failure is logged, since the server runs anyway.
func (n *notifier) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

// startNotifier says READY=1, with the status, and starts the status and watchdog goroutines, which
// stop is the owner of.
func startNotifier(log *slog.Logger, srv *engine.Server) *notifier {
	n := &notifier{log: log, srv: srv, stop: make(chan struct{})}
	n.notify(daemon.SdNotifyReady + "\n" + n.status())
	n.wg.Add(1)
	go n.statusLoop()
	if wd, err := daemon.SdWatchdogEnabled(false); err != nil {
		log.Warn("watchdog", "err", err)
	} else if wd > 0 {
		log.Info("watchdog enabled", "interval", wd)
		n.wg.Add(1)
		go n.watchdogLoop(wd)
	}
	return n
}

func (n *notifier) status() string {
	return fmt.Sprintf("STATUS=serving %d connections", n.srv.Len())
}

func (n *notifier) statusLoop() {
	defer n.wg.Done()
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.notify(n.status())
		}
	}
}

// watchdogLoop pings every half of the watchdog interval, and only after
// a task went through every event loop and came back (Server.Backlog)
// within a quarter of it: a stuck loop stops the pings, and the service
// manager restarts the server.
func (n *notifier) watchdogLoop(wd time.Duration) {
	defer n.wg.Done()
	t := time.NewTicker(wd / 2)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wd/4)
		_, err := n.srv.Backlog(ctx)
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

// stopping says STOPPING=1 and stops the goroutines.
func (n *notifier) stopping() {
	if n == nil {
		return
	}
	close(n.stop)
	n.wg.Wait()
	n.notify(daemon.SdNotifyStopping)
}
