//go:build linux

package main

import (
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeMetricsHandover: a SIGHUP handover of 20 connections leaves
// --metrics-addr's error-disconnect counter at 0 and the handed-over one at
// 20: the successor's counters go on from its predecessor's, where the
// connections it moved count as handed over, and it counts them as
// accepted again (20 by the predecessor, 20 adopted).
func TestServeMetricsHandover(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sp := startServeProc(t, ctx, "--size", "256", "--quiet", "--metrics-addr", "127.0.0.1:0")
	addr := sp.waitFor(reLine(`msg=listening addr=(\S+) .* pid=(\d+)`))[1]
	const peers = 20
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
	}
	if err := syscall.Kill(sp.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m := sp.waitFor(reLine(`msg="upgrade: connections handed over" conns=(\d+) going_away=(\d+)`))
	if m[1] != strconv.Itoa(peers) || m[2] != "0" {
		t.Fatalf("handed over %s, going away %s; want %d and 0\n%s", m[1], m[2], peers, sp.logged())
	}
	newPid, _ := strconv.Atoi(sp.waitFor(reLine(`msg=upgraded pid=(\d+)`))[1])
	// The successor said READY=1 after it served its metrics: its line is
	// the last "metrics listening".
	all := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`).FindAllStringSubmatch(sp.logged(), -1)
	if len(all) != 2 {
		t.Fatalf("%d metrics servers started, want the predecessor's and the successor's\n%s", len(all), sp.logged())
	}
	body := httpGet(t, "http://"+all[1][1]+"/metrics", 10*time.Second)
	for _, want := range []string{
		`simplerpc_disconnects_total{reason="error"} 0`,
		`simplerpc_disconnects_total{reason="handed_over"} 20`,
		`simplerpc_connections_accepted_total 40`,
		`simplerpc_connections_open 20`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("the successor's /metrics lacks %q:\n%s", want, grepLines(body, "simplerpc_disconnects_total", "simplerpc_connections_"))
		}
	}
	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}
