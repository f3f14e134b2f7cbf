package service

// This file tests Run in this process: its listeners, its notifications
// to a service manager's socket of the test's, its errors; and, with this
// test binary as the successor (TestMain), the upgrade on SIGHUP.

import (
	"github.com/simplerpc/simplerpc/internal/testkit"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// envSuccessor makes this test binary, started by an upgrade, run as the
// successor: "serve" serves (testServer, until SIGTERM), "fail" exits 3.
const envSuccessor = "SERVICE_TEST_SUCCESSOR"

func TestMain(m *testing.M) {
	switch os.Getenv(envSuccessor) {
	case "":
		os.Exit(m.Run())
	case "fail":
		os.Exit(3)
	}
	srv, err := testServer()
	if err == nil {
		err = Run(context.Background(), srv, WithLogger(slog.New(slog.DiscardHandler)))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "successor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Opcodes of testServer.
const (
	opEcho = 0 // a call answered with its object
	opPid  = 1 // a call answered with {"pid": the server's process}
)

func testServer() (*engine.Server, error) {
	r := handler.NewRouter()
	r.OnCall(opEcho, func(_ handler.Conn, data []byte) (any, error) {
		return json.RawMessage(append([]byte(nil), data...)), nil
	})
	r.OnCall(opPid, func(handler.Conn, []byte) (any, error) {
		return map[string]int{"pid": os.Getpid()}, nil
	})
	return engine.NewServer(r)
}

// logLines is a logger whose records arrive on a channel, one text line
// each.
func logLines() (*slog.Logger, <-chan string) {
	c := make(chan string, 1024)
	return slog.New(slog.NewTextHandler(chanWriter(c), nil)), c
}

type chanWriter chan string

func (w chanWriter) Write(b []byte) (int, error) {
	select {
	case w <- string(b):
	default: // a test that reads no more does not stop the logger
	}
	return len(b), nil
}

// waitLog waits for a log line containing s.
func waitLog(t *testing.T, lines <-chan string, s string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q", s)
		}
	}
}

// notifySocket is a service manager's NOTIFY_SOCKET, set for the test,
// and the lines it receives.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path, lines := testkit.NotifySocket(t)
	t.Setenv("NOTIFY_SOCKET", path)
	return lines
}

// waitNote waits for the notification line want, returning those before.
func waitNote(t *testing.T, lines <-chan string, want string) []string {
	t.Helper()
	var seen []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-lines:
			if l == want || strings.HasSuffix(want, "=") && strings.HasPrefix(l, want) {
				return append(seen, l)
			}
			seen = append(seen, l)
		case <-timeout:
			t.Fatalf("no notification %q; saw %q", want, seen)
		}
	}
}

// started runs Run in the background; it returns the addresses served
// once ready, and Run's result channel.
func started(t *testing.T, ctx context.Context, opts ...Option) ([]string, <-chan error) {
	t.Helper()
	srv, err := testServer()
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	opts = append(opts, WithOnReady(func(_ context.Context, addrs []string) error {
		ready <- addrs
		return nil
	}))
	go func() { done <- Run(ctx, srv, opts...) }()
	select {
	case addrs := <-ready:
		return addrs, done
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	return nil, nil
}

func call(t *testing.T, ctx context.Context, cl *engine.Client, op int, req, resp any) {
	t.Helper()
	if err := cl.Call(ctx, codec.Opcode(op), req, resp); err != nil {
		t.Fatalf("call on %d: %v", op, err)
	}
}

func dial(t *testing.T, ctx context.Context, addr string) *engine.Client {
	t.Helper()
	cl, err := engine.Dial(ctx, addr, handler.NewRouter())
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	return cl
}

// TestRunWithoutSystemd serves TCP, Unix and WebSocket addresses with no
// service manager (nothing is sent), names them as clients dial them, and
// stops cleanly when its context ends.
func TestRunWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sock := filepath.Join(t.TempDir(), "s.sock")
	log, lines := logLines()
	rctx, stop := context.WithCancel(ctx)
	addrs, done := started(t, rctx, WithLogger(log),
		WithAddrs("127.0.0.1:0", "unix://"+sock, "ws://127.0.0.1:0/rpc"), WithLogAttrs("app", "test"))
	if len(addrs) != 3 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || addrs[1] != "unix://"+sock ||
		!strings.HasPrefix(addrs[2], "ws://127.0.0.1:") || !strings.HasSuffix(addrs[2], "/rpc") {
		t.Fatalf("addresses %q", addrs)
	}
	for _, a := range addrs {
		var got map[string]string
		call(t, ctx, dial(t, ctx, a), opEcho, map[string]string{"via": a}, &got)
		if got["via"] != a {
			t.Errorf("%s echoed %v", a, got)
		}
	}
	l := waitLog(t, lines, "msg=listening")
	if want := fmt.Sprintf("addr=%s app=test activated=0 pid=%d", addrs[0], os.Getpid()); !strings.Contains(l, want) {
		t.Errorf("listening line %q lacks %q", l, want)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	waitLog(t, lines, "msg=stopped")
}

// TestRunNotifies checks the notifications: READY=1 with the status,
// STATUS= on its interval, WATCHDOG=1 while the loops answer, STOPPING=1.
func TestRunNotifies(t *testing.T) {
	notes := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(ctx)
	_, done := started(t, rctx, WithAddrs("127.0.0.1:0"), WithLogger(slog.New(slog.DiscardHandler)),
		WithStatus(func() string { return "fine" }, 10*time.Millisecond))
	if seen := waitNote(t, notes, "READY=1"); len(seen) != 1 {
		t.Errorf("before READY=1: %q", seen)
	}
	waitNote(t, notes, "STATUS=fine")
	waitNote(t, notes, "STATUS=fine") // again, on its interval
	waitNote(t, notes, "WATCHDOG=1")
	stop()
	waitNote(t, notes, "STOPPING=1")
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunErrors checks what Run refuses, and that a failing readiness hook
// stops the server.
func TestRunErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name string
		opts []Option
		is   error
		msg  string
	}{
		{"no address", nil, ErrNoListener, "no address"},
		{"bad scheme", []Option{WithAddrs("udp://127.0.0.1:0")}, ErrOption, `"udp://127.0.0.1:0"`},
		{"no port", []Option{WithAddrs("localhost")}, ErrOption, `"localhost"`},
		{"ws query", []Option{WithAddrs("ws://127.0.0.1:0/a?b")}, ErrOption, "query"},
		{"grace", []Option{WithShutdownGrace(0)}, ErrOption, "positive"},
		{"in use", []Option{WithAddrs(busy.Addr().String())}, nil, "address already in use"},
	} {
		srv, err := testServer()
		if err != nil {
			t.Fatal(err)
		}
		err = Run(ctx, srv, append(tc.opts, quiet)...)
		if err == nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %v with %q", tc.name, err, tc.is, tc.msg)
		}
	}
	srv, err := testServer()
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := Run(ctx, srv, quiet, WithAddrs("127.0.0.1:0"), WithOnReady(func(context.Context, []string) error { return boom })); !errors.Is(err, boom) {
		t.Errorf("a failing readiness hook: %v", err)
	}
	select {
	case <-srv.Done():
	default:
		t.Error("the server runs on after the readiness hook failed")
	}
}

// TestStatusPlural: the default status says "1 connection", not "1
// connections" (issue 32, item 14; it was serve's).
func TestStatusPlural(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connected := make(chan struct{}, 1)
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithOnConnect(func(handler.Conn) { connected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := newConfig(srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.status(), "serving 0 connections"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	dial(t, ctx, srv.Addr().String())
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the server never saw the connection")
	}
	if got, want := c.status(), "serving 1 connection"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
}
