//go:build unix

// This file holds Run's upgrade on SIGHUP: the process starts its
// successor on the same listening sockets, as socket activation would, and
// waits for its readiness; and the successor's side, which takes the
// sockets for its own.

package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Private variables between a process and the successor it upgrades to.
// The successor cannot be given LISTEN_PID, its pid being unknown before
// exec; it is given envUpgradeParent, its parent's pid, instead, and sets
// LISTEN_PID itself when that is its parent indeed. envNextNotify is the
// service manager's NOTIFY_SOCKET ("" for none): the successor's own is its
// predecessor's, for READY=1 only. envHandover is the descriptor of the
// Unix socket on which the predecessor hands over its live connections
// (Handover). The names are those `simplerpc serve` has always used, so
// that an older serve upgrades to a newer one.
const (
	envUpgradeParent = "SIMPLERPC_UPGRADE_PARENT"
	envNextNotify    = "SIMPLERPC_UPGRADE_NOTIFY_SOCKET"
	envHandover      = "SIMPLERPC_UPGRADE_HANDOVER_FD"
)

// upgradeSignal returns the channel that SIGHUP arrives on, and the
// function that stops it.
func upgradeSignal() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// adoptUpgrade makes the sockets of a predecessor this process's own: when
// envUpgradeParent names the parent, it sets LISTEN_PID to this process, so
// that activated takes LISTEN_FDS. It returns the service
// manager's NOTIFY_SOCKET to speak to once ready, or nil when this process
// is no successor. The real socket activation, which sets LISTEN_PID, is
// left alone.
func adoptUpgrade() (*nextNotify, error) {
	parent, ok := os.LookupEnv(envUpgradeParent)
	if !ok {
		return nil, nil
	}
	next := &nextNotify{socket: os.Getenv(envNextNotify)}
	_ = os.Unsetenv(envUpgradeParent)
	_ = os.Unsetenv(envNextNotify)
	if pid := os.Getenv("LISTEN_PID"); pid != "" {
		return nil, fmt.Errorf("upgrade: both LISTEN_PID=%s and %s=%s are set", pid, envUpgradeParent, parent)
	}
	if parent != strconv.Itoa(os.Getppid()) {
		return nil, fmt.Errorf("upgrade: %s=%s is not the parent process (%d)", envUpgradeParent, parent, os.Getppid())
	}
	_ = os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	return next, nil
}

// handoverSocket returns the socket a predecessor hands its connections
// over on (envHandover), or nil when there is none. Called by a successor
// only (adoptUpgrade checked the parent).
func handoverSocket() (*net.UnixConn, error) {
	v, ok := os.LookupEnv(envHandover)
	if !ok {
		return nil, nil
	}
	_ = os.Unsetenv(envHandover)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("upgrade: %s=%q is not a descriptor", envHandover, v)
	}
	f := os.NewFile(uintptr(fd), "handover")
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("upgrade: handover socket: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("upgrade: handover socket: a %T", nc)
	}
	return uc, nil
}

// handoverPair returns the two ends of a Unix stream socketpair: this
// process's, and the successor's to inherit.
func handoverPair() (*net.UnixConn, *os.File, error) {
	syscall.ForkLock.RLock() // no child inherits them but the successor, through ExtraFiles
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err == nil {
		syscall.CloseOnExec(fds[0])
		syscall.CloseOnExec(fds[1])
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return nil, nil, fmt.Errorf("upgrade: socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(fds[0]), "handover")
	defer mine.Close()
	nc, err := net.FileConn(mine)
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, nil, fmt.Errorf("upgrade: socketpair: %w", err)
	}
	return nc.(*net.UnixConn), os.NewFile(uintptr(fds[1]), "handover"), nil
}

// successor is what an upgrade gives the successor beyond the listening
// sockets: for a handover, the successor's end of the socket, and the
// handing over itself, run once the successor has started.
type successor struct {
	handover *os.File
	during   func() error
}

// startSuccessor starts the binary at this process's path, with its
// arguments, on lns (fd 3 onwards, LISTEN_FDS and LISTEN_FDNAMES) and
// waits until it says READY=1 on a notify socket of this process's, until
// it exits, or until ctx ends. With next.handover, that socket follows
// the listeners (envHandover), and next.during runs meanwhile: its error
// fails the upgrade too. It returns the successor's pid once it is ready
// (and next.during has returned); otherwise the successor is killed and
// the error says why.
func startSuccessor(ctx context.Context, log *slog.Logger, lns []net.Listener, names []string, next successor) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	files := make([]*os.File, 0, len(lns))
	defer func() {
		for _, f := range files {
			_ = f.Close() // the successor has its copies
		}
	}()
	for _, ln := range lns {
		f, err := listenerFile(ln)
		if err != nil {
			return 0, fmt.Errorf("upgrade: %w", err)
		}
		files = append(files, f)
	}
	dir, err := os.MkdirTemp("", "simplerpc-upgrade-")
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return 0, fmt.Errorf("upgrade: notify socket: %w", err)
	}
	defer nc.Close()

	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	cmd.Env = append(successorEnv(os.Environ()),
		"LISTEN_FDS="+strconv.Itoa(len(files)),
		"LISTEN_FDNAMES="+strings.Join(names, ":"),
		envUpgradeParent+"="+strconv.Itoa(os.Getpid()),
		envNextNotify+"="+os.Getenv("NOTIFY_SOCKET"),
		"NOTIFY_SOCKET="+sock)
	if next.handover != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, next.handover)
		cmd.Env = append(cmd.Env, envHandover+"="+strconv.Itoa(3+len(files)))
	}
	err = cmd.Start()
	if next.handover != nil {
		_ = next.handover.Close() // the successor's now
	}
	if err != nil {
		return 0, fmt.Errorf("upgrade: start %s: %w", exe, err)
	}
	pid := cmd.Process.Pid
	log.Info("upgrade: successor started", "pid", pid, "path", exe)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan error, 1)
	go func() { ready <- readReady(nc) }()
	during := make(chan error, 1)
	if next.during != nil {
		go func() { during <- next.during() }()
	} else {
		during <- nil
	}
	fail := func(err error) (int, error) {
		_ = cmd.Process.Kill()
		<-exited
		return 0, fmt.Errorf("upgrade: successor %d: %w", pid, err)
	}
	for isReady, handed := false, false; !isReady || !handed; {
		select {
		case err := <-ready:
			if err != nil {
				return fail(err)
			}
			isReady = true
		case err := <-during:
			if err != nil {
				return fail(err)
			}
			handed = true
		case err := <-exited:
			if err == nil {
				err = errors.New("exited before it was ready")
			}
			if !handed {
				<-during // the handover fails with the successor's socket
			}
			return 0, fmt.Errorf("upgrade: successor %d: %w", pid, err)
		case <-ctx.Done():
			if !handed {
				<-during // it ends with ctx too
			}
			return fail(fmt.Errorf("not ready within the upgrade timeout: %w", context.Cause(ctx)))
		}
	}
	for _, ln := range lns {
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false) // the path is the successor's now
		}
	}
	return pid, nil
}

// listenerFile duplicates ln's socket for the successor, leaving it
// non-blocking. (*net.TCPListener).File would not do: os/exec takes its
// descriptor with File.Fd, which makes the socket blocking, a mode its
// duplicates share; this process's accept loop would then wait in
// accept(2), out of reach of Close and of the handover's pause, until the
// next connection came.
func listenerFile(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("cannot hand on a %T", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) {
		syscall.ForkLock.RLock() // no child inherits it but the successor
		if dup, derr = syscall.Dup(int(fd)); derr == nil {
			syscall.CloseOnExec(dup)
		}
		syscall.ForkLock.RUnlock()
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup: %w", derr)
	}
	return os.NewFile(uintptr(dup), ln.Addr().String()), nil // NewFile's Fd leaves it non-blocking
}

// readReady reads datagrams from nc until one says READY=1, or nc fails
// (it is closed when the wait is over).
func readReady(nc *net.UnixConn) error {
	b := make([]byte, 4096)
	for {
		n, err := nc.Read(b)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b[:n]), "\n") {
			if l == "READY=1" {
				return nil
			}
		}
	}
}

// successorEnv is env without what the successor is given afresh, nor
// WATCHDOG_PID: the service manager's watchdog applies to the main
// process, which the successor becomes.
func successorEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_PID", envUpgradeParent, envNextNotify, envHandover:
			continue
		}
		out = append(out, kv)
	}
	return out
}
