//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
)

// TestServeUpgradeHandover upgrades serve with SIGHUP (--upgrade handover,
// the default) while raw TCP peers, which know nothing of going away,
// send a steady stream of numbered echoes: none sees a close, every echo
// comes back exactly once and in order across the upgrade, the old process
// exits 0 once it has handed them all over, and the successor, a new pid,
// serves them and new connections.
func TestServeUpgradeHandover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sp := startServeProc(t, ctx, "--size", "256", "--quiet")
	m := sp.waitFor(reLine(`msg=listening addr=(\S+) .* pid=(\d+)`))
	addr := m[1]

	const peers = 20
	var stop sync.WaitGroup
	quit := make(chan struct{})
	errs := make(chan error, peers)
	counts := make([]int, peers)
	for i := range peers {
		nc, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(90 * time.Second))
		buf := make([]byte, 256)
		if _, err := io.ReadFull(nc, buf); err != nil || !strings.HasPrefix(string(buf), "-2") {
			t.Fatalf("peer %d: no -2 frame: %q %v", i, buf, err)
		}
		stop.Add(1)
		go func() {
			defer stop.Done()
			errs <- rawEchoes(nc, quit, &counts[i])
		}()
	}
	time.Sleep(100 * time.Millisecond) // the streams run before the upgrade
	if err := syscall.Kill(sp.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m = sp.waitFor(reLine(`msg="upgrade: connections handed over" conns=(\d+) going_away=(\d+)`))
	if m[1] != strconv.Itoa(peers) || m[2] != "0" {
		t.Fatalf("handed over %s, going away %s; want %d and 0\n%s", m[1], m[2], peers, sp.logged())
	}
	m = sp.waitFor(reLine(`msg=upgraded pid=(\d+)`))
	newPid, _ := strconv.Atoi(m[1])
	select {
	case err := <-sp.exited:
		if err != nil {
			t.Fatalf("the old serve exited with %v\n%s", err, sp.logged())
		}
	case <-ctx.Done():
		t.Fatalf("the old serve did not exit\n%s", sp.logged())
	}
	if newPid == 0 || newPid == sp.pid {
		t.Fatalf("successor pid %d, old %d", newPid, sp.pid)
	}
	time.Sleep(100 * time.Millisecond) // the streams run on the successor alone
	close(quit)
	stop.Wait()
	for range peers {
		if err := <-errs; err != nil {
			t.Fatalf("%v\n%s", err, sp.logged())
		}
	}
	if !reLine(`msg="adopted the predecessor's connections" conns=` + strconv.Itoa(peers)).MatchString(sp.logged()) {
		t.Errorf("the successor did not log its adoption\n%s", sp.logged())
	}
	r := runBin(t, 30*time.Second, "call", "--addr", addr, "--timeout", "20s", "0", `{"after":"handover"}`)
	r.wantCode(t, 0)
	t.Logf("echoes per peer: %v", counts)
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// rawEchoes sends numbered opcode-0 frames on nc, one at a time, and
// checks each echo, until quit is closed; n counts them.
func rawEchoes(nc net.Conn, quit <-chan struct{}, n *int) error {
	frame := make([]byte, 256)
	buf := make([]byte, 256)
	for seq := 0; ; seq++ {
		select {
		case <-quit:
			*n = seq
			return nil
		default:
		}
		obj := fmt.Sprintf(`{"seq":%d}`, seq)
		copy(frame, "0"+obj)
		for i := 1 + len(obj); i < len(frame); i++ {
			frame[i] = ' '
		}
		if _, err := nc.Write(frame); err != nil {
			return fmt.Errorf("echo %d: write: %w", seq, err)
		}
		if _, err := io.ReadFull(nc, buf); err != nil {
			return fmt.Errorf("echo %d: read: %w", seq, err)
		}
		op, got, err := codec.Decode(buf)
		if err != nil || op != 0 || string(got) != obj {
			return fmt.Errorf("echo %d: op %d %s %v", seq, op, got, err)
		}
		if seq%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}
