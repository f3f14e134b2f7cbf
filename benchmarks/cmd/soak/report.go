// This file holds the soak's report: the sampled rows, the descriptor
// counts and the verdict.

package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sample is one row of the table.
type sample struct {
	at                     time.Duration
	conns, srvFDs, procFDs int
	liveHeap, heapInuse    uint64
	goroutines             int
	callsUp, callsDown     int64 // per second, in the interval
	p99Up, p99Down         time.Duration
	churn                  int64 // cycles per second, in the interval
	broadcasts             int64 // so far
	lost, errs             int64 // so far
	slowClosed             int64 // so far
	// cumulative counters, to compute the next interval's
	totUp, totDown, totChurn int64
}

const tableHeader = "| time | conns | server fds | process fds | live heap MiB | heap in use MiB | goroutines | calls up /s | p99 up ms | calls down /s | p99 down ms | churn /s | broadcasts | slow closed | lost | errors |\n" +
	"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

func (m sample) row() string {
	return fmt.Sprintf("| %s | %d | %d | %d | %.1f | %.1f | %d | %d | %.2f | %d | %.2f | %d | %d | %d | %d | %d |",
		m.at.Round(time.Second), m.conns, m.srvFDs, m.procFDs, mib(m.liveHeap), mib(m.heapInuse), m.goroutines,
		m.callsUp, ms(m.p99Up), m.callsDown, ms(m.p99Down), m.churn,
		m.broadcasts, m.slowClosed, m.lost, m.errs)
}

func mib(b uint64) float64       { return float64(b) / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *soak) sample(start time.Time, last sample) sample {
	// The counters and the latencies first, with the time they are read
	// at: the GC and the /proc reads below take a while on a busy core, and
	// the rates must not count that time's calls in this interval.
	cur := sample{
		at: time.Since(start), conns: s.srv.Stats().Conns, broadcasts: s.broadcasts.Load(),
		errs:       s.errsUp.Load() + s.errsDown.Load() + s.churnErrs.Load() + s.directErrs.Load() + s.bcastErrs.Load(),
		slowClosed: s.slowClosed.Load(),
		totUp:      s.callsUp.Load(), totDown: s.callsDown.Load(), totChurn: s.churnCycles.Load(),
	}
	cur.p99Up, cur.p99Down = s.takeLatency()
	for _, p := range s.peers {
		cur.lost += p.lost()
	}
	secs := (cur.at - last.at).Seconds()
	if secs <= 0 {
		secs = 1
	}
	cur.callsUp = int64(float64(cur.totUp-last.totUp) / secs)
	cur.callsDown = int64(float64(cur.totDown-last.totDown) / secs)
	cur.churn = int64(float64(cur.totChurn-last.totChurn) / secs)

	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	cur.liveHeap, cur.heapInuse = mem.HeapAlloc, mem.HeapInuse
	cur.goroutines = runtime.NumGoroutine()
	cur.procFDs, _ = countFDs()
	cur.srvFDs, _ = serverFDs(s.port)
	return cur
}

// countFDs returns the process's open descriptors.
func countFDs() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	return len(ents), err
}

// serverFDs returns how many of the process's descriptors are sockets
// bound to the server's port: its listener and accepted connections.
func serverFDs(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for ino := range socketInodes(string(b), port) {
			inodes[ino] = true
		}
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(ino, "]")] {
			n++
		}
	}
	return n, nil
}

// socketInodes returns the inodes of the sockets in a /proc/net/tcp table
// whose local port is port (TIME_WAIT entries have inode 0 and no
// descriptor).
func socketInodes(table string, port int) map[string]bool {
	out := map[string]bool{}
	hexPort := fmt.Sprintf(":%04X", port)
	for i, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 10 {
			continue
		}
		if strings.HasSuffix(f[1], hexPort) && f[9] != "0" {
			out[f[9]] = true
		}
	}
	return out
}

// verdict is the end of the report.
type verdict struct {
	flat                bool
	lines               []string
	fdsBefore, fdsAfter int
	gBefore, gAfter     int
}

func (v verdict) String() string {
	var b strings.Builder
	for _, l := range v.lines {
		fmt.Fprintln(&b, l)
	}
	fmt.Fprintf(&b, "after shutdown: process fds %d (before the run %d), goroutines %d (before %d)\n",
		v.fdsAfter, v.fdsBefore, v.gAfter, v.gBefore)
	if v.flat {
		b.WriteString("verdict: FLAT\n")
	} else {
		b.WriteString("verdict: NOT FLAT\n")
	}
	return b.String()
}

// judge compares the first half of the samples after the warm-up with the
// second half: each measure must not have grown beyond its slack.
func judge(cfg config, samples []sample, lost int64, s *soak) verdict {
	v := verdict{flat: true}
	// The last sample is taken when the traffic stops, often part way
	// through an interval: left out of the comparison.
	body := samples
	if len(body) > 1 {
		body = body[:len(body)-1]
	}
	skip := int(float64(len(body)) * cfg.warmup)
	body = body[skip:]
	if len(body) < 2 {
		v.lines = append(v.lines, "too few samples to judge (run longer or sample more often)")
		v.flat = false
		return v
	}
	first, second := body[:len(body)/2], body[len(body)/2:]
	check := func(name string, get func(sample) float64, ratio, slack float64, unit string) {
		a, b := median(first, get), median(second, get)
		ok := b <= a*ratio+slack
		mark := "flat"
		if !ok {
			mark = "GREW"
			v.flat = false
		}
		v.lines = append(v.lines, fmt.Sprintf("%-22s first half %8.2f%s, second half %8.2f%s: %s (allowed %.2f%s)",
			name, a, unit, b, unit, mark, a*ratio+slack, unit))
	}
	trend := func(name string, get func(sample) float64, unit string) {
		v.lines = append(v.lines, fmt.Sprintf("%-22s trend %+.2f%s an hour (least squares past the warm-up)",
			name, slope(body, get)*3600, unit))
	}
	check("server fds", func(m sample) float64 { return float64(m.srvFDs) }, 1.05, 4, "")
	check("process fds", func(m sample) float64 { return float64(m.procFDs) }, 1.05, 8, "")
	check("live heap", func(m sample) float64 { return mib(m.liveHeap) }, 1.2, 2, " MiB")
	check("goroutines", func(m sample) float64 { return float64(m.goroutines) }, 1.1, 10, "")
	// Latency on a shared machine moves with the neighbours' load: a leak
	// that slows every call grows past 3x, noise seldom does.
	check("p99 up", func(m sample) float64 { return ms(m.p99Up) }, 3, 5, " ms")
	check("p99 down", func(m sample) float64 { return ms(m.p99Down) }, 3, 5, " ms")

	trend("live heap", func(m sample) float64 { return mib(m.liveHeap) }, " MiB")
	trend("process fds", func(m sample) float64 { return float64(m.procFDs) }, "")
	trend("goroutines", func(m sample) float64 { return float64(m.goroutines) }, "")

	var bGot, dGot int64
	for _, p := range s.peers {
		p.mu.Lock()
		bGot, dGot = bGot+p.bGot, dGot+p.dGot
		p.mu.Unlock()
	}
	s.reasonMu.Lock()
	reasons := make([]string, 0, len(s.reasons))
	for k, n := range s.reasons {
		reasons = append(reasons, k+" "+strconv.Itoa(n))
	}
	s.reasonMu.Unlock()
	v.lines = append(v.lines,
		fmt.Sprintf("calls: %d up, %d down; errors %d up, %d down", s.callsUp.Load(), s.callsDown.Load(), s.errsUp.Load(), s.errsDown.Load()),
		fmt.Sprintf("churn: %d cycles, %d errors; slow peers: %d, closed by the server %d; broadcasts %d (%d errors), direct-send errors %d",
			s.churnCycles.Load(), s.churnErrs.Load(), s.slowCycles.Load(), s.slowClosed.Load(), s.broadcasts.Load(), s.bcastErrs.Load(), s.directErrs.Load()),
		fmt.Sprintf("server disconnects by reason: %s", strings.Join(slices.Sorted(slices.Values(reasons)), ", ")),
		fmt.Sprintf("frames received by healthy peers: %d broadcasts, %d direct sends", bGot, dGot),
		fmt.Sprintf("frames lost by healthy peers, once the traffic stopped and what was in flight arrived: %d", lost))
	if e := s.firstErr.Load(); e != nil {
		v.lines = append(v.lines, "first error: "+*e)
	}
	errs := s.errsUp.Load() + s.errsDown.Load() + s.directErrs.Load() + s.bcastErrs.Load() + s.churnErrs.Load()
	if lost != 0 || errs != 0 {
		v.flat = false
	}
	return v
}

func median(ss []sample, get func(sample) float64) float64 {
	vals := make([]float64, len(ss))
	for i, m := range ss {
		vals[i] = get(m)
	}
	slices.Sort(vals)
	n := len(vals)
	if n%2 == 1 {
		return vals[n/2]
	}
	return (vals[n/2-1] + vals[n/2]) / 2
}

// slope returns the least-squares slope of get over the samples' times,
// per second.
func slope(ss []sample, get func(sample) float64) float64 {
	var mx, my float64
	for _, m := range ss {
		mx += m.at.Seconds()
		my += get(m)
	}
	n := float64(len(ss))
	mx, my = mx/n, my/n
	var num, den float64
	for _, m := range ss {
		dx := m.at.Seconds() - mx
		num += dx * (get(m) - my)
		den += dx * dx
	}
	if den == 0 {
		return 0
	}
	return num / den
}
