package main

import (
	"github.com/simplerpc/simplerpc/internal/testkit"

	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// notifySocket is testkit's NotifySocket.
func notifySocket(t *testing.T) (string, <-chan string) { return testkit.NotifySocket(t) }

// waitNotify waits for a notify line that matches re, returning the lines
// seen before it.
func waitNotify(t *testing.T, lines <-chan string, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	var seen []string
	deadline := time.After(timeout)
	for {
		select {
		case l := <-lines:
			if re.MatchString(l) {
				return seen
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("no notify line matching %v within %v; saw %q", re, timeout, seen)
		}
	}
}

// activateCommand returns systemd-socket-activate's path, failing the test
// without it: CI must install it (Debian's systemd package).
func activateCommand(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatal("systemd-socket-activate is not installed (apt-get install systemd): the socket-activation tests need it")
	}
	return p
}

// TestServeSocketActivation checks that serve takes the socket
// systemd-socket-activate hands it instead of --addr, and speaks sd_notify:
// READY=1 with STATUS=, WATCHDOG=1 pings, STOPPING=1 at shutdown.
func TestServeSocketActivation(t *testing.T) {
	t.Parallel()
	act := activateCommand(t)
	sock, notes := notifySocket(t)
	addr := closedAddr(t)
	p := startProc(t, act, "-l", addr,
		"-E", "NOTIFY_SOCKET="+sock, "-E", "WATCHDOG_USEC=1000000", "-E", "GORACE="+os.Getenv("GORACE"),
		binary, "serve", "--addr", "127.0.0.1:1", "--size", "256")
	p.waitLine(t, reLine(`Listening on `+regexp.QuoteMeta(addr)), 20*time.Second)
	// systemd-socket-activate starts serve at the first connection.
	r := runBin(t, 30*time.Second, "call", "--addr", addr, "--timeout", "20s", "0", `{"via":"activation"}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{"via":"activation"}}` + "\n"; r.stdout != want {
		t.Errorf("call printed %q, want %q", r.stdout, want)
	}
	if m := p.waitLine(t, reLine(`msg=listening addr=(\S+) .*activated=(\d+)`), 20*time.Second); m[1] != addr || m[2] != "1" {
		t.Errorf("serve logged listening on %s with %s activated sockets, want %s and 1", m[1], m[2], addr)
	}
	waitNotify(t, notes, reLine(`^READY=1$`), 20*time.Second)
	waitNotify(t, notes, reLine(`^STATUS=serving \d+ connections?$`), 20*time.Second)
	waitNotify(t, notes, reLine(`^WATCHDOG=1$`), 20*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitNotify(t, notes, reLine(`^STOPPING=1$`), 20*time.Second)
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("serve exited %d\nstderr:\n%s", code, p.stderr.String())
	}
}
