package main

import (
	"testing"
	"time"
)

// TestSocketInodes reads a /proc/net/tcp table: the sockets on the port,
// listening or connected, not those of other ports nor TIME_WAIT entries.
func TestSocketInodes(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:8CA7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5101 1 0000000000000000 100 0 0 10 0
   1: 0100007F:8CA7 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 5102 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2F0 0100007F:8CA7 01 00000000:00000000 00:00000000 00000000     0        0 5103 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:8CA7 0100007F:D2F1 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3 0000000000000000
`
	got := socketInodes(table, 0x8CA7)
	if len(got) != 2 || !got["5101"] || !got["5102"] {
		t.Fatalf("got %v, want the listener 5101 and the accepted 5102", got)
	}
}

// TestPeerLost counts gaps, not frames still in flight.
func TestPeerLost(t *testing.T) {
	p := &peer{bFirst: -1, bLast: -1, dLast: -1}
	for _, s := range []int64{7, 8, 10} {
		p.saw(true, s)
	}
	for _, s := range []int64{0, 1, 2} {
		p.saw(false, s)
	}
	if n := p.lost(); n != 1 {
		t.Fatalf("lost %d, want 1 (broadcast 9)", n)
	}
}

// TestJudge: a measure that grows past its slack is not flat; noise within
// it is; the warm-up and the last sample are left out.
func TestJudge(t *testing.T) {
	mk := func(fds []int) []sample {
		var ss []sample
		for i, n := range fds {
			ss = append(ss, sample{at: time.Duration(i) * time.Second, srvFDs: n, procFDs: n, goroutines: 10})
		}
		return ss
	}
	s := &soak{reasons: map[string]int{}}
	cfg := config{warmup: 0.2}
	if v := judge(cfg, mk([]int{900, 900, 50, 52, 51, 50, 52, 51, 3}), 0, s); !v.flat {
		t.Fatalf("noise within the slack: %v", v)
	}
	if v := judge(cfg, mk([]int{50, 50, 50, 60, 70, 80, 90, 100, 110, 50}), 0, s); v.flat {
		t.Fatalf("growing descriptors judged flat: %v", v)
	}
	if v := judge(cfg, mk([]int{50, 50, 50, 50, 50, 50}), 1, s); v.flat {
		t.Fatalf("a lost frame judged flat: %v", v)
	}
}

// TestSlope fits a line.
func TestSlope(t *testing.T) {
	ss := []sample{{at: 0, goroutines: 10}, {at: time.Second, goroutines: 12}, {at: 2 * time.Second, goroutines: 14}}
	if got := slope(ss, func(m sample) float64 { return float64(m.goroutines) }); got < 1.99 || got > 2.01 {
		t.Fatalf("slope %v, want 2 a second", got)
	}
}
