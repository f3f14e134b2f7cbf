package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
)

// pinned prefixes a command with taskset when the machine has the cores.
func (r *runner) pinned(core int, bin string, args ...string) *exec.Cmd {
	path := filepath.Join(r.bin, bin)
	if r.pin {
		return exec.Command("taskset", append([]string{"-c", fmt.Sprint(core), path}, args...)...)
	}
	return exec.Command(path, args...)
}

// server is a benchserver process.
type server struct {
	cmd    *exec.Cmd
	pid    int
	addr   string
	stderr bytes.Buffer
	lines  chan string // stdout after the "listening" line
}

// startServer starts benchserver on core 0 and waits for its address.
func (r *runner) startServer(impl string, extra ...string) (*server, error) {
	args := append([]string{"-impl", impl, "-size", fmt.Sprint(r.plan.Size)}, extra...)
	s := &server{cmd: r.pinned(0, "benchserver", args...), lines: make(chan string, 16)}
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.pid = s.cmd.Process.Pid // taskset execs the server: same pid
	line := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		l, _ := br.ReadString('\n')
		line <- l
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case s.lines <- strings.TrimSpace(l):
			default:
			}
		}
	}()
	select {
	case l := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(l), "listening ")
		if !ok {
			s.stop()
			return nil, fmt.Errorf("benchserver %s: %q %s", impl, l, s.stderr.String())
		}
		s.addr = addr
	case <-time.After(15 * time.Second):
		s.stop()
		return nil, fmt.Errorf("benchserver %s did not start: %s", impl, s.stderr.String())
	}
	return s, nil
}

// freeOS makes the server collect its garbage and return free memory to
// the system (SIGUSR1), and waits until it has.
func (s *server) freeOS() error {
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return err
	}
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case l := <-s.lines:
			if l == "freed" {
				return nil
			}
		case <-timer.C:
			return fmt.Errorf("benchserver did not free its memory within 30 s")
		}
	}
}

// stop sends SIGTERM and waits, killing after a while.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// load runs loadgen on core 1 and parses its result.
func (r *runner) load(timeout time.Duration, args ...string) (*report.LoadResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := r.pinned(1, "loadgen", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var err error
	select {
	case err = <-waitErr:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-waitErr
		err = fmt.Errorf("timed out after %v", timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("loadgen %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 3))
	}
	return report.ParseLoad(stdout.Bytes())
}

// holder is a hold process.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready chan error
}

// startHolder opens n idle connections from source on core 1, over tr.
func (r *runner) startHolder(addr string, n int, source string, tr servers.Transport) (*holder, error) {
	h := &holder{ready: make(chan error, 1)}
	args := []string{"-addr", addr, "-n", fmt.Sprint(n), "-source", source, "-size", fmt.Sprint(r.plan.Size)}
	switch tr {
	case servers.TLS:
		args = append(args, "-tls")
	case servers.WebSocket:
		args = append(args, "-ws")
	}
	h.cmd = r.pinned(1, "hold", args...)
	var stderr bytes.Buffer
	h.cmd.Stderr = &stderr
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		l, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && !strings.HasPrefix(l, "ready ") {
			err = fmt.Errorf("unexpected %q", l)
		}
		if err != nil {
			// Let the process finish writing its error.
			time.Sleep(100 * time.Millisecond)
			err = fmt.Errorf("hold -n %d -source %s: %w: %s", n, source, err, lastLines(stderr.String(), 3))
		}
		h.ready <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	return h, nil
}

// stop closes the holder's stdin, which closes its connections, and waits.
func (h *holder) stop() {
	_ = h.stdin.Close()
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = h.cmd.Process.Kill()
		<-done
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
