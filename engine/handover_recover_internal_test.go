//go:build unix

// This file tests that a failed handover's recovery ends when the loop
// that is to take the connections back does not run: it gives up on them
// within its bound instead of waiting for ever.

package engine

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

func TestRecoverBoundedWhenLoopsDoNotRun(t *testing.T) {
	const size, n = 64, 3
	srv, err := NewServer(handler.NewRouter(), WithMessageSize(size), WithEventLoops(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	// A connection of its own, so that its loop is known.
	own, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	_ = own.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(own, make([]byte, size)); err != nil {
		t.Fatal(err)
	}

	// The handover's socket: the successor's end already gone.
	dir := t.TempDir()
	uln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "h"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	uc, err := net.DialUnix("unix", nil, uln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()

	// n connections as a failed handover leaves them: their sockets here,
	// not acknowledged by the successor; the test holds the peers' ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var peers []net.Conn
	var back []handedConn
	for i := range n {
		peer, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { peer.Close() })
		_ = peer.SetDeadline(time.Now().Add(30 * time.Second))
		ours, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		fd := socketFD(t, ours.(*net.TCPConn))
		_ = ours.Close()
		peers = append(peers, peer)
		back = append(back, handedConn{ID: uint64(100 + i), In: size, Out: size, FD: fd})
	}
	readDone := make(chan struct{})
	close(readDone)
	h := &handSession{s: srv, uc: uc, wake: make(chan struct{}, 1), readDone: readDone, sent: [][]handedConn{back}}

	// The loop runs nothing until released: as if it had stopped.
	l := srv.side.eachLoop()[0]
	held, release := make(chan struct{}), make(chan struct{})
	if err := l.enqueue(task{kind: taskFunc, fn: func() { close(held); <-release }}, nil); err != nil {
		t.Fatal(err)
	}
	<-held
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	gaveUp := make(chan int, 1)
	go func() { gaveUp <- h.recover(50 * time.Millisecond) }()
	select {
	case k := <-gaveUp:
		if k != n {
			t.Errorf("recover gave up on %d connections, want %d", k, n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("recover still waits for a loop that does not run")
	}

	// The first was handed to the loop; the others, never handed, are
	// closed: their peers read EOF.
	for i, p := range peers[1:] {
		if _, err := p.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Errorf("peer %d: %v, want EOF (its connection closed)", i+1, err)
		}
	}
	// Once the loop runs again, the one it was handed opens with its
	// state: it answers a ping at its size.
	close(release)
	released = true
	ping, err := codec.Append(nil, size, codec.OpPing, map[string]int{"t": 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peers[0].Write(ping); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, size)
	if _, err := io.ReadFull(peers[0], pong); err != nil {
		t.Fatalf("net id %d, once the loop ran: %v", back[0].ID, err)
	}
	if op, _, err := codec.Decode(pong); err != nil || op != codec.OpPong {
		t.Errorf("net id %d answered a ping with %q (%v)", back[0].ID, pong, err)
	}
}

// socketFD returns a descriptor of nc's socket of the caller's own, as a
// handover carries it.
func socketFD(t *testing.T, nc *net.TCPConn) int {
	t.Helper()
	rc, err := nc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if cerr := rc.Control(func(s uintptr) { fd, err = dupFD(int(s)) }); cerr != nil || err != nil {
		t.Fatal(cerr, err)
	}
	return fd
}
