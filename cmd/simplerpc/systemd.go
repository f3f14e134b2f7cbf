package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
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
// this process (LISTEN_FDS, LISTEN_PID), or nil when there are none, with
// their names (LISTEN_FDNAMES), which an upgrade hands on. It unsets the
// variables, so that no child takes them for its own.
func activatedListeners() ([]net.Listener, []string, error) {
	files := activation.Files(true)
	lns := make([]net.Listener, 0, len(files))
	names := make([]string, 0, len(files))
	var err error
	for i, f := range files {
		ln, lerr := net.FileListener(f) // a duplicate: f is closed here
		_ = f.Close()
		if lerr == nil {
			if _, ok := ln.(fileListener); !ok {
				_ = ln.Close()
				lerr = errors.New("not a stream listener")
			}
		}
		if lerr != nil {
			if err == nil {
				err = fmt.Errorf("socket activation: descriptor %d is not a TCP or Unix stream listener: %w", 3+i, lerr)
			}
			continue
		}
		lns, names = append(lns, ln), append(names, f.Name())
	}
	if err != nil {
		for _, ln := range lns {
			_ = ln.Close()
		}
		return nil, nil, err
	}
	return lns, names, nil
}

// fileListener is a listener whose socket can be duplicated, for a
// successor: *net.TCPListener and *net.UnixListener.
type fileListener interface {
	net.Listener
	File() (*os.File, error)
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

// startNotifier says READY=1, with the status, and starts the status and
// watchdog goroutines, which stop is the owner of. A successor started by
// an upgrade says READY=1 to its predecessor (the NOTIFY_SOCKET it was
// given) and then speaks to the service manager, if any (next).
func startNotifier(log *slog.Logger, srv *engine.Server, next *nextNotify) *notifier {
	n := &notifier{log: log, srv: srv, stop: make(chan struct{})}
	n.notify(daemon.SdNotifyReady + "\n" + n.status())
	next.restore()
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

func (n *notifier) status() string {
	return "STATUS=serving " + countOf(n.srv.Len(), "connection")
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

// handOver stops the goroutines, as stopping does, and tells the service
// manager that pid, the successor, is the service's main process now
// (MAINPID=; the unit needs NotifyAccess=all for the successor's own
// messages). It says no STOPPING=1: the service goes on.
func (n *notifier) handOver(pid int) {
	close(n.stop)
	n.wg.Wait()
	n.notify(fmt.Sprintf("MAINPID=%d\nSTATUS=upgraded: serving from pid %d", pid, pid))
}
