package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// TestMain runs the test binary as a worker when the driver starts it so
// (it starts os.Executable with -worker).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-worker" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCastUpgrade runs the broadcast measurement at a small scale: serve
// built from this tree, 20 TCP and 20 ws:// peers, 200 broadcasts a second
// across one SIGHUP. Every peer stays connected and gets every broadcast
// once and in order, and the upgrade's times are measured.
func TestCastUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds serve and runs an upgrade")
	}
	bin := filepath.Join(t.TempDir(), "simplerpc")
	build := exec.Command("go", "build", "-o", bin, "../../../cmd/simplerpc")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	r := run{serve: bin, conns: 40, ws: 20, procs: 2, size: 256, loops: 2, rate: 200, before: time.Second,
		after: 500 * time.Millisecond, upgrade: "handover", drain: 10 * time.Second, upgradeTimeout: 30 * time.Second}
	got, err := driveCast(r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Peers != 41 || !got.ok() {
		t.Fatalf("%d connections (want 40 peers and the broadcaster): disconnected %d, expected %d, received %d, lost %d, "+
			"duplicated %d, reordered %d, not a broadcast %d; %v", got.Peers, got.Disconnects, got.Expected, got.Received,
			got.Lost, got.Duplicated, got.Reordered, got.Unexpected, got.Errors)
	}
	if got.sent < 200 || got.Expected != 41*got.sent {
		t.Fatalf("%d broadcasts sent, %d deliveries expected: want at least 200 (1.5 s at 200/s), to 41 connections", got.sent, got.Expected)
	}
	if got.up.ready <= 0 || got.up.exit < got.up.ready || got.up.handed == "" {
		t.Fatalf("upgrade times: ready %v, exit %v, handed over %q", got.up.ready, got.up.exit, got.up.handed)
	}
}

// TestPeerCounts checks a peer's sequence check: a gap is lost, a repeat
// duplicated, a late one reordered (and not lost), and what was never
// sent is not counted.
func TestPeerCounts(t *testing.T) {
	frame, err := wire.BroadcastFrame(256)
	if err != nil {
		t.Fatal(err)
	}
	p := &castPeer{top: -1, lat: hdrhistogram.New(1, 60_000_000, 3)}
	now := time.Now()
	for i, seq := range []uint64{0, 1, 3, 2, 3, 5, 70} {
		wire.PutDigits(frame[wire.RoundOff:wire.RoundOff+wire.RoundLen], seq)
		wire.PutDigits(frame[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(now.UnixNano()))
		p.saw(frame, now.Add(time.Duration(i)*time.Millisecond))
	}
	p.saw([]byte(`-8{"reason":"upgrade"}`), now)
	res := tally([]*castPeer{p}, 71)
	if res.Received != 7 || res.Duplicated != 1 || res.Reordered != 1 || res.Unexpected != 1 || res.Lost != 71-6 {
		t.Fatalf("received %d, duplicated %d, reordered %d, not a broadcast %d, lost %d; want 7, 1, 1, 1, 65",
			res.Received, res.Duplicated, res.Reordered, res.Unexpected, res.Lost)
	}
	if p.has(4) != 4 || p.has(64) != 5 {
		t.Fatalf("has(4) %d, has(64) %d; want 4, 5", p.has(4), p.has(64))
	}
}
