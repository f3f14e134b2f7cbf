// Command flood measures what peers that send and never read make a
// server hold (issue 28): -peers connections each write -each bytes of
// echo requests and read nothing, while -healthy peers echo one frame
// every -every and time it. It starts `simplerpc serve` (with GOMEMLIMIT
// when -gomemlimit is set), waits until every flooding peer was closed
// or -timeout passed, and prints the server's peak RSS (VmHWM), how long
// the flooders took to be closed, and what the healthy peers saw: frames
// lost and the worst round trip.
//
//	flock /work/bench.lock flood -serve ./simplerpc -peers 100 -each 6MiB
//	flock /work/bench.lock flood -serve ./simplerpc -peers 500 -gomemlimit 256MiB
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	serveBin := flag.String("serve", "./simplerpc", "the simplerpc binary")
	peers := flag.Int("peers", 100, "flooding peers")
	each := flag.String("each", "6MiB", "bytes of requests each flooding peer sends (KiB, MiB suffixes)")
	healthy := flag.Int("healthy", 5, "healthy peers echoing throughout")
	every := flag.Duration("every", 20*time.Millisecond, "a healthy peer's echo interval")
	memLimit := flag.String("gomemlimit", "", "GOMEMLIMIT for the server (empty: none)")
	timeout := flag.Duration("timeout", 120*time.Second, "give up waiting for the flooders after this long")
	extra := flag.String("args", "", "more serve flags, space-separated")
	flag.Parse()
	perPeer, err := parseBytes(*each)
	if err != nil {
		log.Fatal(err)
	}

	args := []string{"serve", "--addr", "127.0.0.1:0", "--size", "1024"}
	if *extra != "" {
		args = append(args, strings.Fields(*extra)...)
	}
	cmd := exec.Command(*serveBin, args...)
	cmd.Env = os.Environ()
	if *memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+*memLimit)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr, bound := waitListening(stderr)
	fmt.Printf("server %s, bound %s\n", addr, bound)

	const size = 1024
	frame := []byte(`0{"x":"` + strings.Repeat("y", 900) + `"}`)
	frame = append(frame, strings.Repeat(" ", size-len(frame))...)
	chunk := []byte(strings.Repeat(string(frame), 64))

	// Healthy peers: one echo every -every, timed; a frame that does not
	// come back is lost.
	stop := make(chan struct{})
	var lost, sentH, worst atomic.Int64
	var hwg sync.WaitGroup
	for i := range *healthy {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		r := bufio.NewReader(c)
		buf := make([]byte, size)
		if _, err := io.ReadFull(r, buf); err != nil { // the -2
			log.Fatal(err)
		}
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			defer c.Close()
			t := time.NewTicker(*every)
			defer t.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				f := []byte(fmt.Sprintf(`0{"h":%d,"n":%d}`, i, n))
				f = append(f, strings.Repeat(" ", size-len(f))...)
				start := time.Now()
				sentH.Add(1)
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := c.Write(f); err != nil {
					lost.Add(1)
					return
				}
				if _, err := io.ReadFull(r, buf); err != nil {
					lost.Add(1)
					return
				}
				if rtt := time.Since(start).Nanoseconds(); rtt > worst.Load() {
					worst.Store(rtt)
				}
			}
		}()
	}

	// Flooding peers, from 127.0.1.x sources so that many fit.
	start := time.Now()
	var closedAt atomic.Int64
	var fwg sync.WaitGroup
	var closed atomic.Int64
	for i := range *peers {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%250))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(*timeout))
			for n := 0; n < perPeer; n += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					closed.Add(1)
					closedAt.Store(time.Since(start).Nanoseconds())
					return
				}
			}
			// All sent: hold on, still reading nothing, and find out when
			// the server closed by writing one more frame now and then.
			for time.Since(start) < *timeout {
				time.Sleep(250 * time.Millisecond)
				if _, err := c.Write(frame); err != nil {
					closed.Add(1)
					closedAt.Store(time.Since(start).Nanoseconds())
					return
				}
			}
		}()
	}
	fwg.Wait()
	close(stop)
	hwg.Wait()
	peak := vmHWM(cmd.Process.Pid)
	fmt.Printf("peers %d x %s, GOMEMLIMIT %q: peak RSS %.0f MiB; %d of %d flooders closed, the last after %.1f s; healthy: %d echoes, %d lost, worst round trip %.1f ms\n",
		*peers, *each, *memLimit, float64(peak)/(1<<20), closed.Load(), *peers,
		float64(closedAt.Load())/1e9, sentH.Load(), lost.Load(), float64(worst.Load())/1e6)
}

var reListening = regexp.MustCompile(`msg=listening addr=(\S+).*max_buffered=(\d+) max_buffered_from=("[^"]*"|\S+)`)

// waitListening reads serve's log until its listening line, then drains
// the rest in the background.
func waitListening(r io.Reader) (addr, bound string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := reListening.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			n, _ := strconv.Atoi(m[2])
			return strings.TrimPrefix(m[1], "tcp://"), fmt.Sprintf("%d MiB from %s", n>>20, m[3])
		}
	}
	log.Fatal("serve exited before listening")
	return "", ""
}

// vmHWM returns the process's peak resident set size in bytes.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func parseBytes(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "MiB"):
		mult, s = 1<<20, strings.TrimSuffix(s, "MiB")
	case strings.HasSuffix(s, "KiB"):
		mult, s = 1<<10, strings.TrimSuffix(s, "KiB")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("bytes %q: %w", s, err)
	}
	return n * mult, nil
}
