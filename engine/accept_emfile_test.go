//go:build unix

package engine_test

// This file holds the test that the server survives running out of
// descriptors, and its server process: descriptor limits are Unix's.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// emfileChild is the server of TestAcceptSurvivesEMFILE, in a process of
// its own whose descriptor limit is 64: it prints its address and serves
// until its standard input closes.
func emfileChild() {
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(1)
	}
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithMessageSize(128), engine.WithMaxConns(10000))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println(srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := srv.Err(); err != nil {
		fmt.Println("server stopped:", err)
		os.Exit(1)
	}
	_ = srv.Close()
}

// TestAcceptSurvivesEMFILE runs a server whose process may hold 64
// descriptors, with a connection cap far above that, and opens 150
// connections to it: accept fails with EMFILE, and the server neither
// stops (gnet's own acceptor would have, GNET.md §7.1) nor exits. Once the
// connections close, a new one is served.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "SIMPLERPC_EMFILE_CHILD=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(line)
	if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
		t.Fatalf("child: %s", line)
	}
	var conns []net.Conn
	for range 150 {
		c, err := net.DialTimeout("tcp", addr, testTimeout)
		if err != nil {
			break // the backlog is full: the point is made
		}
		conns = append(conns, c)
	}
	// Some were served, the rest wait in the backlog while accept fails.
	greeted := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := io.ReadFull(c, make([]byte, 128)); err == nil {
			greeted++
		}
	}
	if greeted >= len(conns) {
		t.Fatalf("all %d connections were served under a limit of 64 descriptors: the test proves nothing", greeted)
	}
	for _, c := range conns {
		c.Close()
	}
	// The server recovers: a new connection gets its -2 frame.
	var got bool
	for deadline := time.Now().Add(testTimeout); !got && time.Now().Before(deadline); {
		c, err := net.DialTimeout("tcp", addr, testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 128)
		if _, err := io.ReadFull(c, buf); err == nil {
			op, _, derr := codec.Decode(buf)
			got = derr == nil && op == codec.OpMessageSize
		}
		c.Close()
	}
	if !got {
		t.Fatal("no connection was served after the others closed")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		rest, _ := io.ReadAll(out)
		t.Fatalf("the server process: %v %s", err, rest)
	}
}
