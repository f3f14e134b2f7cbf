package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/internal/testkit"
)

// mainEnv makes the test binary run main instead of the tests: the
// signal tests start the example as its own process that way.
const mainEnv = "MESSENGER_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		return
	}
	testkit.VerifyTestMain(m) // no goroutine left behind
}

// TestBoth runs the example as `go run ./examples/messenger` does and
// checks the original README's exchange.
func TestBoth(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), nil, &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for line, n := range map[string]int{
		`client: got RPC 1 with: {"some_data":"this is sent to every connection"}`:       1,
		`client: got RPC 1 with: {"some_data":"this is sent to whoever just connected"}`: 2,
		`server: got RPC 0 from net id 1 with: {"some_data":123}`:                        3,
		`client: failure ArgumentMissing: Expected argument 'argname' in opcode 2`:       1,
		`client: connected, message size learned from the server`:                        1,
		`server: net id 1 disconnected`:                                                  1,
	} {
		if c := strings.Count(got, line); c != n {
			t.Errorf("%q appears %d times, want %d\n%s", line, c, n, got)
		}
	}
}

// TestSeparateRoles runs the server role and the client role on their own,
// as two processes would, over a real socket.
func TestSeparateRoles(t *testing.T) {
	var sout bytes.Buffer
	p := &printer{w: &sout}
	srv, err := newServer(p, 256)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cout bytes.Buffer
	done := make(chan struct{})
	cl, err := dialClient(t.Context(), &printer{w: &cout}, srv.Addr().String(), 3, done)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
	cl.Close()
	<-cl.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cout.String(), "failure ArgumentMissing") {
		t.Errorf("client output:\n%s", cout.String())
	}
	if !strings.Contains(sout.String(), `got RPC 0 from net id 1 with: {"some_data":123}`) {
		t.Errorf("server output:\n%s", sout.String())
	}
}

// TestBadFlags: bad flags exit 2, not a hang or a failure.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-role", "nope"}, {"-frobnicate"}} {
		var errb bytes.Buffer
		err := run(context.Background(), args, io.Discard, &errb)
		if code := exitCode(io.Discard, err); code != 2 {
			t.Errorf("run %q: exit %d (err %v), want 2", args, code, err)
		}
		if errb.Len() == 0 {
			t.Errorf("run %q said nothing on stderr", args)
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); err != nil {
		t.Errorf("-h: %v, want nil", err)
	}
}

// startServer starts the example's server in the test process and
// returns its address; the cleanup shuts it down.
func startServer(t *testing.T) string {
	t.Helper()
	srv, err := newServer(&printer{w: io.Discard}, 256)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv.Addr().String()
}

// lines is an io.Writer that hands each complete line to a channel.
type lines struct {
	mu  sync.Mutex // guards buf
	buf []byte
	ch  chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 256)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case l.ch <- string(l.buf[:i]):
		default: // nobody waits for more lines
		}
		l.buf = l.buf[i+1:]
	}
}

// wait returns the submatches of the first line that matches re.
func (l *lines) wait(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-l.ch:
			if m := re.FindStringSubmatch(s); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no line matching %v within 20s", re)
		}
	}
}

var connectedRE = regexp.MustCompile(`^client: connected`)

// TestRunCancelled: the client role returns nil when its context is
// cancelled (what Ctrl-C does), and an error when the server goes away.
func TestRunCancelled(t *testing.T) {
	addr := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLines()
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-role", "client", "-addr", addr}, out, io.Discard) }()
	out.wait(t, connectedRE)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run after cancel: %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}

	// A cancelled server role stops cleanly too.
	ctx, cancel = context.WithCancel(context.Background())
	out = newLines()
	go func() { errc <- run(ctx, []string{"-role", "server", "-addr", "127.0.0.1:0"}, out, io.Discard) }()
	out.wait(t, regexp.MustCompile(`^server: listening on 127\.0\.0\.1:\d+`))
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("server run after cancel: %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server role did not return after its context was cancelled")
	}
}

// TestClientServerGone: losing the server is a real failure, exit 1.
func TestClientServerGone(t *testing.T) {
	srv, err := newServer(&printer{w: io.Discard}, 256)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	out := newLines()
	errc := make(chan error, 1)
	go func() {
		errc <- run(context.Background(), []string{"-role", "client", "-addr", srv.Addr().String()}, out, io.Discard)
	}()
	out.wait(t, connectedRE)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if code := exitCode(io.Discard, err); code != 1 {
			t.Errorf("run after the server went away: %v, exit %d; want a failure, exit 1", err, code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after the server went away")
	}
}

// TestInterrupt sends SIGINT to the example running as its own process, in
// each role: a Ctrl-C is a clean stop, exit 0.
func TestInterrupt(t *testing.T) {
	addr := startServer(t)
	for _, tc := range []struct {
		role  string
		args  []string
		ready *regexp.Regexp
	}{
		{"client", []string{"-role", "client", "-addr", addr}, connectedRE},
		{"server", []string{"-role", "server", "-addr", "127.0.0.1:0"}, regexp.MustCompile(`^server: listening on 127\.0\.0\.1:\d+`)},
		{"both", []string{"-role", "both", "-addr", "127.0.0.1:0"}, regexp.MustCompile(`^server: listening on`)},
	} {
		t.Run(tc.role, func(t *testing.T) {
			code, stderr := interrupt(t, tc.args, tc.ready)
			if code != 0 {
				t.Errorf("exit %d after SIGINT, want 0\nstderr:\n%s", code, stderr)
			}
		})
	}
}

// interrupt runs the example as a process with args, sends it SIGINT once
// a line of its output matches ready, and returns its exit status and
// stderr.
func interrupt(t *testing.T, args []string, ready *regexp.Regexp) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	// Under -race the runtime sleeps a second at exit by default, to catch
	// late reports; a race still makes the process exit with 66.
	cmd.Env = append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=50")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := newLines()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, bufio.NewReader(stdout))
	}()
	exited := make(chan error, 1)
	go func() {
		<-copied // Wait closes the pipe: read it all first
		exited <- cmd.Wait()
	}()
	out.wait(t, ready)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("no exit within 20s of SIGINT\nstderr:\n%s", stderr.String())
	}
	return 0, ""
}
