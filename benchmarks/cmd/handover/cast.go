// This file holds the driver of the broadcast measurement (issue 30): the
// peers listen, one broadcaster sends to all at a steady rate across one
// SIGHUP, and the driver totals what the peers saw.

package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// castRun is what one broadcast measurement saw.
type castRun struct {
	castResult
	sent int64
	up   upgraded
}

// ok reports whether no peer was disconnected and every delivery came
// once and in order.
func (t *castRun) ok() bool {
	return t.Disconnects == 0 && t.Lost == 0 && t.Duplicated == 0 && t.Reordered == 0 && t.Unexpected == 0 &&
		t.Received == t.Expected && t.Expected > 0
}

// driveCast runs the broadcast measurement and prints what it saw.
func driveCast(r run) (t *castRun, err error) {
	if r.ws < 0 || r.ws > r.conns || r.procs < 1 {
		return nil, fmt.Errorf("-ws %d must lie within 0..-conns (%d), -procs %d must be positive", r.ws, r.conns, r.procs)
	}
	rlimit.RaiseNoFile() // the processes inherit it
	srv, err := startServe(r, []string{"127.0.0.1:0", "ws://127.0.0.1:0" + wire.WSPath}, r.conns+100)
	if err != nil {
		return nil, err
	}
	defer srv.kill()
	defer func() {
		if err != nil {
			srv.logTail()
		}
	}()
	u, err := url.Parse(srv.addrs[1])
	if err != nil {
		return nil, fmt.Errorf("serve's ws:// address %q: %w", srv.addrs[1], err)
	}
	tcp := r.conns - r.ws
	log.Printf("serve pid %d on %s and %s; %d peers (%d TCP, %d ws://) in %d processes, %d broadcasts a second",
		srv.pid, srv.addrs[0], srv.addrs[1], r.conns, tcp, r.ws, r.procs, r.rate)
	common := []string{"-addr", srv.addrs[0], "-wsaddr", u.Host, "-size", strconv.Itoa(r.size),
		"-rate", strconv.Itoa(r.rate), "-drain", r.drain.String()}
	workers := make([]*proc, 0, r.procs+1)
	defer func() {
		for _, w := range workers {
			w.kill()
		}
	}()
	for i := range r.procs {
		w, err := startWorker(r.pin, append([]string{"-source", fmt.Sprintf("127.0.1.%d", i+1),
			"-n", strconv.Itoa(share(tcp, r.procs, i)), "-nws", strconv.Itoa(share(r.ws, r.procs, i))}, common...)...)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	sender, err := startWorker(r.pin, append([]string{"-source", fmt.Sprintf("127.0.1.%d", r.procs+1), "-n", "1", "-send"},
		common...)...)
	if err != nil {
		return nil, err
	}
	workers = append(workers, sender)
	log.Printf("all connected, broadcasting; the upgrade in %v", r.before)
	time.Sleep(r.before)
	up, upErr := srv.upgrade(r.upgradeTimeout)
	if upErr != nil {
		// What the peers saw is reported all the same: the old process
		// serves on after a failed upgrade.
		log.Printf("the upgrade failed: %v", upErr)
		srv.logTail()
		up.pid = srv.pid
	} else {
		log.Printf("upgraded to pid %d: successor ready %v, old process exited %v after SIGHUP", up.pid,
			up.ready.Round(time.Millisecond), up.exit.Round(time.Millisecond))
	}
	time.Sleep(r.after)
	if _, err := fmt.Fprintln(sender.stdin, "end"); err != nil {
		return nil, err
	}
	l, err := sender.out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("the broadcaster: %q %w", l, err)
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(l), "sent "), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the broadcaster: %q", l)
	}
	for _, w := range workers {
		if _, err := fmt.Fprintln(w.stdin, "count", n); err != nil {
			return nil, err
		}
	}
	var total castResult
	lat := hdrhistogram.New(1, 60_000_000, 3)
	var gapAt []int64
	for i, w := range workers {
		var res castResult
		if err := json.NewDecoder(w.out).Decode(&res); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
		total.Peers += res.Peers
		total.Disconnects += res.Disconnects
		total.Unexpected += res.Unexpected
		total.Expected += res.Expected
		total.Received += res.Received
		total.Lost += res.Lost
		total.Duplicated += res.Duplicated
		total.Reordered += res.Reordered
		total.Gaps = append(total.Gaps, res.Gaps...)
		gapAt = append(gapAt, res.GapAt...)
		total.Errors = append(total.Errors, res.Errors...)
		if res.Lat != nil {
			lat.Merge(hdrhistogram.Import(res.Lat))
		}
	}
	_ = syscall.Kill(up.pid, syscall.SIGTERM)
	report(r, n, total, gapAt, lat, up)
	if upErr != nil {
		return nil, fmt.Errorf("the upgrade failed: %w", upErr)
	}
	return &castRun{castResult: total, sent: n, up: up}, nil
}

// report prints what the peers saw.
func report(r run, sent int64, t castResult, gapAt []int64, lat *hdrhistogram.Histogram, up upgraded) {
	worst := 0
	for i, g := range t.Gaps {
		if g > t.Gaps[worst] {
			worst = i
		}
	}
	gaps := slices.Clone(t.Gaps)
	slices.Sort(gaps)
	quantile := func(q float64) time.Duration {
		if len(gaps) == 0 {
			return 0
		}
		return us(gaps[min(len(gaps)-1, int(q*float64(len(gaps))))])
	}
	var worstAt time.Duration
	if len(gapAt) > worst {
		worstAt = time.UnixMicro(gapAt[worst]).Sub(up.sighup)
	}
	fmt.Printf("peers %d (%d TCP, %d ws://) and the broadcaster: disconnected %d, frames that were no broadcast %d\n",
		r.conns, r.conns-r.ws, r.ws, t.Disconnects, t.Unexpected)
	fmt.Printf("broadcasts sent %d at %d/s; deliveries expected %d, received %d: lost %d, duplicated %d, reordered %d\n",
		sent, r.rate, t.Expected, t.Received, t.Lost, t.Duplicated, t.Reordered)
	fmt.Printf("longest stall (gap between two deliveries to one peer): max %v (ended %v after SIGHUP), p99 across peers %v, median %v; interval %v\n",
		quantile(1), worstAt.Round(time.Millisecond), quantile(0.99), quantile(0.5), time.Second/time.Duration(r.rate))
	fmt.Printf("delivery latency (send to receipt) p50 %v p99 %v p99.9 %v max %v\n", us(lat.ValueAtQuantile(50)),
		us(lat.ValueAtQuantile(99)), us(lat.ValueAtQuantile(99.9)), us(lat.Max()))
	fmt.Printf("upgrade: %s\n", strings.TrimSpace(up.handed))
	fmt.Printf("upgrade: SIGHUP to the successor ready %v, to the old process's exit %v\n",
		up.ready.Round(time.Millisecond), up.exit.Round(time.Millisecond))
	fmt.Printf("row: | %d of %d | %d | %d | %d | %d | %d | %v | %v | %v | %v |\n",
		t.Disconnects, t.Peers, t.Expected, t.Received, t.Lost, t.Duplicated, t.Reordered,
		quantile(1).Round(time.Millisecond), quantile(0.99).Round(time.Millisecond),
		up.ready.Round(time.Millisecond), up.exit.Round(time.Millisecond))
	for i, e := range t.Errors {
		if i == 5 {
			break
		}
		fmt.Println("error:", e)
	}
}
