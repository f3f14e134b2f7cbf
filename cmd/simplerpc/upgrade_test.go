//go:build linux

package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestServeUpgrade upgrades serve with SIGHUP while a reconnecting client
// has a numbered stream of echoes going (calls on opcode 0, which a client
// finishes on the old connection before it lets it go): the old process
// exits 0, its successor serves on the same address, and every echo comes
// back exactly once, in order, across the upgrade.
func TestServeUpgrade(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sp := startServeProc(t, ctx, "--size", "256", "--quiet", "--upgrade", "goaway")
	lines, logged, waitFor, exited, oldPid := sp.lines, sp.logged, sp.waitFor, sp.exited, sp.pid
	m := waitFor(reLine(`msg=listening addr=(\S+) .* pid=(\d+)`))
	addr := m[1]

	cl, err := engine.Dial(ctx, addr, handler.NewRouter(),
		engine.WithReconnect(5*time.Millisecond, 50*time.Millisecond, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	type note struct {
		Seq int `json:"seq"`
	}
	seq := 0
	echo := func() {
		t.Helper()
		var got note
		if err := cl.Call(ctx, opEcho, note{Seq: seq}, &got); err != nil {
			t.Fatalf("echo %d: %v\n%s", seq, err, logged())
		}
		if got.Seq != seq {
			t.Fatalf("echo %d came back as %d", seq, got.Seq)
		}
		seq++
	}
	for range 100 {
		echo()
	}
	if err := syscall.Kill(oldPid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The stream goes on while the successor starts and the old process
	// goes away.
	var newPid int
	lineDone := make(chan []string, 1)
	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		for l := range lines {
			if m := reLine(`msg=upgraded pid=(\d+)`).FindStringSubmatch(l); m != nil {
				lineDone <- m
				break
			}
		}
		for range lines { // keep the successor's output flowing
		}
	}()
	var oldErr error
	for exitedOld, upgraded := false, false; !exitedOld || !upgraded; {
		select {
		case oldErr = <-exited:
			exitedOld = true
		case m := <-lineDone:
			newPid, _ = strconv.Atoi(m[1])
			upgraded = true
		case <-ctx.Done():
			t.Fatalf("no upgrade: %v\n%s", ctx.Err(), logged())
		default:
			echo()
		}
	}
	if oldErr != nil {
		t.Fatalf("the old serve exited with %v\n%s", oldErr, logged())
	}
	if newPid == 0 || newPid == oldPid {
		t.Fatalf("successor pid %d, old %d", newPid, oldPid)
	}
	// The successor serves on the same address: the stream goes on, and a
	// new connection is answered.
	before := seq
	for range 100 {
		echo()
	}
	r := runBin(t, 30*time.Second, "call", "--addr", addr, "--timeout", "20s", "0", `{"after":"upgrade"}`)
	r.wantCode(t, 0)
	t.Logf("%d echoes before the successor took over, %d after", before, seq-before)
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The successor's exit ends the output.
	select {
	case <-outputDone:
	case <-ctx.Done():
		t.Fatalf("the successor %d did not stop: %v\n%s", newPid, ctx.Err(), logged())
	}
	if !reLine(`msg=stopped`).MatchString(logged()) {
		t.Errorf("the successor did not stop cleanly\n%s", logged())
	}
}

// serveProc is a serve process of a test's, with its output: the
// successor inherits serve's stderr, a pipe of the test's own, which ends
// once every process holding it has exited.
type serveProc struct {
	pid     int
	exited  chan error
	lines   chan string
	logMu   sync.Mutex
	logText []byte
	t       *testing.T
	ctx     context.Context
}

// startServeProc starts serve on 127.0.0.1:0 with args; the process and its
// successors are killed when the test ends.
func startServeProc(t *testing.T, ctx context.Context, args ...string) *serveProc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = successorEnv(os.Environ()) // no service manager of the test's
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	sp := &serveProc{pid: cmd.Process.Pid, exited: make(chan error, 1), lines: make(chan string, 1024), t: t, ctx: ctx}
	go func() { sp.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-sp.pid, syscall.SIGKILL) // the old process and its successor
	})
	go func() {
		defer close(sp.lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			sp.logMu.Lock()
			sp.logText = append(append(sp.logText, sc.Bytes()...), '\n')
			sp.logMu.Unlock()
			sp.lines <- sc.Text()
		}
	}()
	return sp
}

// logged returns the output so far.
func (sp *serveProc) logged() string {
	sp.logMu.Lock()
	defer sp.logMu.Unlock()
	return string(sp.logText)
}

// waitFor returns the submatches of the next line that matches re.
func (sp *serveProc) waitFor(re *regexp.Regexp) []string {
	sp.t.Helper()
	for {
		select {
		case l, ok := <-sp.lines:
			if !ok {
				sp.t.Fatalf("serve's output ended before a line matching %v\n%s", re, sp.logged())
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-sp.ctx.Done():
			sp.t.Fatalf("no line matching %v: %v\n%s", re, sp.ctx.Err(), sp.logged())
		}
	}
}
