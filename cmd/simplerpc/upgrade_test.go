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

	// The successor inherits serve's stderr: a pipe of the test's own,
	// which ends once every process holding it has exited.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--size", "256", "--quiet")
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.Env = successorEnv(os.Environ()) // no service manager of the test's
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	oldPid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-oldPid, syscall.SIGKILL) // the old process and its successor
	})
	var logMu sync.Mutex
	var logText []byte
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			logMu.Lock()
			logText = append(append(logText, sc.Bytes()...), '\n')
			logMu.Unlock()
			lines <- sc.Text()
		}
	}()
	logged := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return string(logText)
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
