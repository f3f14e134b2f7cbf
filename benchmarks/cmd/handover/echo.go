// This file holds the echo measurement (issue 21): every connection sends
// a numbered echo at a steady rate, and the driver totals the echoes lost
// and the longest waits, during the upgrade and outside it.

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
)

// proc is a worker process and its pipes.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startWorker starts this binary as a worker with args, on CPU 1 when
// pinned, and waits for its "ready" line.
func startWorker(pin bool, args ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := pinned(pin, "1", exe, append([]string{"-worker"}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, stdin: in, out: bufio.NewReader(out)}
	l, err := p.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "ready") {
		p.kill()
		return nil, fmt.Errorf("worker %v: %q %v", args, l, err)
	}
	return p, nil
}

// kill kills the worker, if it still runs, and reaps it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// share is connection i's share of n among procs.
func share(n, procs, i int) int {
	k := n / procs
	if i < n%procs {
		k++
	}
	return k
}

func drive(r run) (err error) {
	rlimit.RaiseNoFile() // the processes inherit it
	srv, err := startServe(r, []string{"127.0.0.1:0"}, r.conns+100)
	if err != nil {
		return err
	}
	defer srv.kill()
	defer func() {
		if err != nil {
			srv.logTail()
		}
	}()
	log.Printf("serve pid %d on %s; %d connections in %d processes, an echo each %v", srv.pid, srv.addrs[0], r.conns, r.procs, r.every)
	ws := make([]*proc, r.procs)
	for i := range ws {
		p, err := startWorker(r.pin, "-addr", srv.addrs[0], "-source", fmt.Sprintf("127.0.1.%d", i+1),
			"-n", strconv.Itoa(share(r.conns, r.procs, i)), "-size", strconv.Itoa(r.size), "-every", r.every.String())
		if err != nil {
			return err
		}
		defer p.kill()
		ws[i] = p
	}
	log.Printf("all connected; the upgrade in %v", r.before)
	time.Sleep(r.before)
	up, err := srv.upgrade(r.upgradeTimeout)
	if err != nil {
		return err
	}
	t0, t1 := up.sighup, up.sighup.Add(up.exit)
	log.Printf("%s", up.handed)
	log.Printf("upgraded to pid %d in %v (SIGHUP to the old process's exit)", up.pid, up.exit.Round(time.Millisecond))
	time.Sleep(r.after)
	for _, w := range ws {
		_ = w.stdin.Close()
	}
	var total result
	hist := hdrhistogram.New(1, 60_000_000, 3)
	// The longest wait for an echo sent during the upgrade (from SIGHUP to
	// the old process's exit, and one interval either side), and outside it.
	var during, outside int64
	from, to := t0.Add(-r.every).UnixMilli(), t1.Add(r.every).UnixMilli()
	for i, w := range ws {
		var res result
		if err := json.NewDecoder(w.out).Decode(&res); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
		_ = w.cmd.Wait()
		total.Conns += res.Conns
		total.Disconnects += res.Disconnects
		total.Lost += res.Lost
		total.Sent += res.Sent
		total.Echoed += res.Echoed
		total.MaxRTT = max(total.MaxRTT, res.MaxRTT)
		total.MaxGap = max(total.MaxGap, res.MaxGap)
		total.Errors = append(total.Errors, res.Errors...)
		for j, v := range res.Buckets {
			at := res.Start + int64(j)*bucketSpan.Milliseconds()
			if at+bucketSpan.Milliseconds() > from && at < to {
				during = max(during, v)
			} else {
				outside = max(outside, v)
			}
		}
		if res.HistJSON != nil {
			hist.Merge(hdrhistogram.Import(res.HistJSON))
		}
	}
	_ = syscall.Kill(up.pid, syscall.SIGTERM)
	fmt.Printf("connections %d, disconnected %d, frames lost %d, echoes %d of %d sent\n",
		total.Conns, total.Disconnects, total.Lost, total.Echoed, total.Sent)
	fmt.Printf("longest pause (max wait for one echo) %v; longest gap between two echoes %v (interval %v)\n",
		us(total.MaxRTT), us(total.MaxGap), r.every)
	fmt.Printf("longest wait for an echo sent during the upgrade %v; outside it %v\n", us(during), us(outside))
	fmt.Printf("echo RTT p50 %v p99 %v p99.9 %v p99.99 %v\n", us(hist.ValueAtQuantile(50)), us(hist.ValueAtQuantile(99)),
		us(hist.ValueAtQuantile(99.9)), us(hist.ValueAtQuantile(99.99)))
	fmt.Printf("upgrade: SIGHUP to the old process's exit %v\n", up.exit.Round(time.Millisecond))
	for i, e := range total.Errors {
		if i == 5 {
			break
		}
		fmt.Println("error:", e)
	}
	return nil
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
