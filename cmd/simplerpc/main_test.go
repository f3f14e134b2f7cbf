package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/internal/testkit"
)

// binary is the simplerpc command built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "simplerpc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "simplerpc")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race") // the subprocesses are checked too
		// The race runtime sleeps a second at exit by default, to catch
		// late reports; a race still makes the process exit with 66.
		os.Setenv("GORACE", "atexit_sleep_ms=50")
	}
	// go test puts its own GOROOT/bin first in the PATH of the test
	// binary (since Go 1.19): "go" is the toolchain that runs the tests.
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building simplerpc:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for a writer and readers in several
// goroutines.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what one run of the binary produced.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// runBin runs the binary with args and waits at most timeout for it.
func runBin(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	return runCommand(t, timeout, "", binary, args...)
}

// runCommand runs name with args, stdin from stdin, within timeout.
func runCommand(t *testing.T, timeout time.Duration, stdin, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Stdin = strings.NewReader(stdin)
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ctx.Err() == nil:
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s %v: %v (after %v)\nstdout:\n%s\nstderr:\n%s", name, args, err, r.elapsed, r.stdout, r.stderr)
	}
	return r
}

// wantCode fails the test unless r exited with code.
func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

// proc is a subprocess that runs while the test talks to it.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	lines  chan string // stderr, line by line
	done   chan struct{}
	err    error // set before done is closed

	interrupted atomic.Bool
}

// startBin starts the binary with args in the background; the test's
// cleanup kills it if it is still running.
func startBin(t *testing.T, args ...string) *proc {
	t.Helper()
	return startProc(t, binary, args...)
}

// startProc starts name with args in the background, as startBin does.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{
		cmd:    exec.Command(name, args...),
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		lines:  make(chan string, 1024),
		done:   make(chan struct{}),
	}
	// Go's own GOMAXPROCS in the child, whatever the tests were run with:
	// serve then raises it beside its loops where it must (service's
	// TestSpareP checks that path), and the engine warns of nothing.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Stdout = p.stdout
	pr, pw := io.Pipe()
	p.cmd.Stderr = io.MultiWriter(p.stderr, pw)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for lines any more
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLine waits for a stderr line that matches re and returns its
// submatches.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			// Lines written just before the exit may still be queued.
		drain:
			for {
				select {
				case l := <-p.lines:
					if m := re.FindStringSubmatch(l); m != nil {
						return m
					}
				default:
					break drain
				}
			}
			t.Fatalf("process exited (%v) before printing a line matching %v\nstderr:\n%s", p.err, re, p.stderr.String())
		case <-deadline:
			t.Fatalf("no line matching %v within %v\nstderr:\n%s", re, timeout, p.stderr.String())
		}
	}
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("process did not exit within %v\nstdout:\n%s\nstderr:\n%s", timeout, p.stdout.String(), p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// interrupt sends SIGINT to the process, once: a second one would kill
// it.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if p.interrupted.Swap(true) {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

var listeningRE = reLine(`msg=listening addr=(\S+)`)

// reLine compiles a pattern for waitLine.
func reLine(pattern string) *regexp.Regexp { return regexp.MustCompile(pattern) }

// startServe starts `simplerpc serve` on a free port, or the --addr
// values of extra (which may repeat), with extra args and returns it with
// its (first) address; the cleanup stops it with SIGINT and checks that it
// exits 0.
func startServe(t *testing.T, extra ...string) (*proc, string) {
	t.Helper()
	args := []string{"serve", "--addr", "127.0.0.1:0", "--size", "256"}
	if slices.Contains(extra, "--addr") {
		args = []string{"serve", "--size", "256"}
	}
	p := startBin(t, append(args, extra...)...)
	addr := p.waitLine(t, listeningRE, 20*time.Second)[1]
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		p.interrupt(t)
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("serve exited %d after SIGINT\nstderr:\n%s", code, p.stderr.String())
		}
	})
	return p, addr
}

// closedAddr returns a loopback address where nothing listens.
// startCost is how long a call that fails at once (a closed port) takes
// now: the cost of starting the binary on this machine at this moment,
// which a bound on a command's duration must leave room for.
func startCost(t *testing.T) time.Duration {
	t.Helper()
	r := runBin(t, 60*time.Second, "call", "--addr", closedAddr(t), "0", `{}`)
	r.wantCode(t, 1)
	return r.elapsed
}

// overrun fails the test if a command given --timeout d took more than d
// plus room for the machine's load (three times startCost, and a second):
// what it catches is a command that waits seconds past its --timeout.
func overrun(t *testing.T, r result, d time.Duration) {
	t.Helper()
	if bound := d + 3*startCost(t) + time.Second; r.elapsed > bound {
		t.Errorf("took %v for --timeout %v (bound %v on this machine now)", r.elapsed, d, bound)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fakeServer starts a hand-written TCP server on a free loopback port that
// runs serve on every connection it accepts, then closes it. The cleanup
// closes the listener and the open connections and waits for serve to
// return.
func fakeServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards conns
	conns := map[net.Conn]struct{}{}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// padded returns text padded with spaces to a frame of size bytes.
func padded(size int, text string) []byte { return testkit.Pad(text, size) }

// fakeSize is the message size fake servers announce.
const fakeSize = 64

// announce writes the -2 frame and then the frames given, at fakeSize.
func announce(c net.Conn, frames ...string) error {
	b := padded(fakeSize, fmt.Sprintf(`-2{"message_size":%d}`, fakeSize))
	for _, f := range frames {
		b = append(b, padded(fakeSize, f)...)
	}
	_, err := c.Write(b)
	return err
}
