//go:build unix

package service

// This file tests the upgrade on SIGHUP, this test binary being the
// successor (TestMain).

import (
	"context"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestUpgrade upgrades a Run of this process's to a successor process
// while a client is connected: the client's connection moves (the
// successor answers it, from its own pid), the service manager is told
// MAINPID=, Run returns nil, and the successor speaks to the service
// manager itself until SIGTERM stops it.
func TestUpgrade(t *testing.T) {
	notes := notifySocket(t)
	t.Setenv(envSuccessor, "serve")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log, lines := logLines()
	addrs, done := started(t, ctx, WithAddrs("127.0.0.1:0"), WithLogger(log))
	waitNote(t, notes, "READY=1")
	cl := dial(t, ctx, addrs[0])
	var who struct{ Pid int }
	call(t, ctx, cl, opPid, struct{}{}, &who)
	if who.Pid != os.Getpid() {
		t.Fatalf("pid %d before the upgrade, want %d", who.Pid, os.Getpid())
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	note := waitNote(t, notes, "MAINPID=")
	next, _ := strconv.Atoi(note[len(note)-1][len("MAINPID="):])
	if next <= 0 || next == os.Getpid() {
		t.Fatalf("%q", note)
	}
	waitLog(t, lines, `msg="upgrade: connections handed over" conns=1 going_away=0`)
	if err := <-done; err != nil {
		t.Fatalf("Run after the upgrade: %v", err)
	}
	call(t, ctx, cl, opPid, struct{}{}, &who)
	if who.Pid != next {
		t.Fatalf("pid %d after the upgrade, want the successor's, %d", who.Pid, next)
	}
	select {
	case <-cl.Done():
		t.Fatalf("the client was closed: %v", cl.Err())
	default:
	}
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitNote(t, notes, "STOPPING=1")
}

// TestUpgradeFails has the successor exit at once: Run logs why, runs the
// hooks that take back what the successor would have had, and serves on,
// its client still connected.
func TestUpgradeFails(t *testing.T) {
	t.Setenv(envSuccessor, "fail")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log, lines := logLines()
	hooks := make(chan string, 2)
	rctx, stop := context.WithCancel(ctx)
	addrs, done := started(t, rctx, WithAddrs("127.0.0.1:0"), WithLogger(log),
		WithOnUpgrade(func(context.Context) { hooks <- "before" }, func(context.Context) { hooks <- "failed" }))
	cl := dial(t, ctx, addrs[0])
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, lines, "upgrade failed; serving on")
	if a, b := <-hooks, <-hooks; a != "before" || b != "failed" {
		t.Errorf("hooks ran %s, %s", a, b)
	}
	var who struct{ Pid int }
	call(t, ctx, cl, opPid, struct{}{}, &who)
	call(t, ctx, dial(t, ctx, addrs[0]), opPid, struct{}{}, &who)
	if who.Pid != os.Getpid() {
		t.Fatalf("pid %d, want this process's", who.Pid)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
