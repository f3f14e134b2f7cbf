//go:build linux

package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeUpgradeWebSocket upgrades a serve with a TCP and a ws://
// address: the successor, handed both sockets with their names, serves
// WebSocket again on the same address and path, and TCP on the other.
func TestServeUpgradeWebSocket(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--addr", "ws://127.0.0.1:0/chat",
		"--size", "256", "--quiet", "--grace", "1s")
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = successorEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	oldPid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-oldPid, syscall.SIGKILL) })
	var mu sync.Mutex // guards text
	var text strings.Builder
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			mu.Lock()
			text.WriteString(sc.Text() + "\n")
			mu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	logged := func() string {
		mu.Lock()
		defer mu.Unlock()
		return text.String()
	}
	waitFor := func(re *regexp.Regexp) []string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("serve's output ended before a line matching %v\n%s", re, logged())
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-ctx.Done():
				t.Fatalf("no line matching %v: %v\n%s", re, ctx.Err(), logged())
			}
		}
	}
	ws := waitFor(alsoListeningRE)[1]
	tcp := waitFor(listeningRE)[1]
	echo := func(addr string) {
		t.Helper()
		r := runBin(t, 30*time.Second, "call", "--addr", addr, "--timeout", "20s", "0", `{"a":1}`)
		r.wantCode(t, 0)
	}
	echo(ws)
	if err := syscall.Kill(oldPid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The successor's own lines, then the old process's last.
	if got := waitFor(alsoListeningRE)[1]; got != ws {
		t.Fatalf("the successor serves WebSocket at %q, want %q\n%s", got, ws, logged())
	}
	m := waitFor(reLine(`msg=listening addr=(\S+) .* activated=2 pid=(\d+)`))
	if m[1] != tcp {
		t.Fatalf("the successor listens on %q, want %q", m[1], tcp)
	}
	newPid, _ := strconv.Atoi(m[2])
	waitFor(reLine(`msg=upgraded pid=` + m[2]))
	echo(ws)
	echo(tcp)
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(reLine(`msg=stopped`))
}
