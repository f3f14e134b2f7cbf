// This file holds a worker process of the measurement: it holds its share
// of the connections, each sending a numbered echo at a steady rate and
// timing the answers, and prints what its connections saw.

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// bucketSpan is the span of time over which the workers note the longest
// wait for an echo; maxBuckets of them cover a run.
const (
	bucketSpan = 100 * time.Millisecond
	maxBuckets = 6000
)

// result is what one worker's connections saw, printed as JSON.
type result struct {
	Conns       int      `json:"conns"`
	Disconnects int      `json:"disconnects"` // connections that failed: a close, a reset, an error
	Lost        int      `json:"lost"`        // echoes that never came, or came wrong
	Sent        int64    `json:"sent"`
	Echoed      int64    `json:"echoed"`
	MaxRTT      int64    `json:"max_rtt_us"` // the longest wait for one echo: the longest pause
	MaxGap      int64    `json:"max_gap_us"` // the longest time between two echoes of one connection
	Errors      []string `json:"errors,omitempty"`
	// Buckets is the longest wait for an echo sent in each bucketSpan since
	// Start (unix milliseconds), in microseconds: when the pauses were.
	Start    int64   `json:"start_unix_ms"`
	Buckets  []int64 `json:"buckets_us"`
	hist     *hdrhistogram.Histogram
	HistJSON *hdrhistogram.Snapshot `json:"hist"`
}

// worker dials n connections to addr from source and runs them until
// stdin closes.
func worker(addr, source string, n, size int, every time.Duration) error {
	if limit := rlimit.RaiseNoFile(); uint64(n)+64 > limit {
		return fmt.Errorf("-n %d does not fit the file-descriptor limit %d", n, limit)
	}
	conns := make([]net.Conn, n)
	err := dial.Many(addr, n, 32, []string{source}, wire.SizeFrame(size), 30*time.Second, func(i int, nc net.Conn) error {
		conns[i] = nc
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Println("ready", n)
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var mu sync.Mutex
	res := result{Conns: n, hist: hdrhistogram.New(1, 60_000_000, 3)}
	start := time.Now()
	buckets := make([]atomic.Int64, maxBuckets)
	var wg sync.WaitGroup
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := echoConn(nc, size, every, stop, start, buckets)
			mu.Lock()
			defer mu.Unlock()
			res.Sent += c.sent
			res.Echoed += c.echoed
			res.MaxRTT = max(res.MaxRTT, c.maxRTT.Microseconds())
			res.MaxGap = max(res.MaxGap, c.maxGap.Microseconds())
			res.hist.Merge(c.hist)
			if c.err != nil {
				res.Disconnects++
				if len(res.Errors) < 5 {
					res.Errors = append(res.Errors, c.err.Error())
				}
			}
			res.Lost += c.lost
		}()
	}
	wg.Wait()
	for _, nc := range conns {
		_ = nc.Close()
	}
	res.HistJSON = res.hist.Export()
	res.Start = start.UnixMilli()
	last := 0
	for i := range buckets {
		if buckets[i].Load() > 0 {
			last = i + 1
		}
	}
	for i := range last {
		res.Buckets = append(res.Buckets, buckets[i].Load())
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// connStats is what one connection saw.
type connStats struct {
	sent, echoed   int64
	lost           int
	maxRTT, maxGap time.Duration
	hist           *hdrhistogram.Histogram
	err            error
}

// echoConn sends a numbered opcode-0 frame every interval (the first at a
// random phase, so that the connections spread over it), waits for each
// echo, and checks it, until stop is closed.
func echoConn(nc net.Conn, size int, every time.Duration, stop <-chan struct{}, start time.Time, buckets []atomic.Int64) connStats {
	st := connStats{hist: hdrhistogram.New(1, 60_000_000, 3)}
	frame := make([]byte, size)
	buf := make([]byte, size)
	next := time.Now().Add(rand.N(every))
	last := time.Time{}
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return st
		case <-time.After(time.Until(next)):
		}
		next = next.Add(every)
		obj := `{"seq":` + strconv.Itoa(seq) + `}`
		copy(frame, "0"+obj)
		for i := 1 + len(obj); i < size; i++ {
			frame[i] = ' '
		}
		t0 := time.Now()
		_ = nc.SetDeadline(t0.Add(30 * time.Second))
		if _, err := nc.Write(frame); err != nil {
			st.err = fmt.Errorf("echo %d: write: %w", seq, err)
			return st
		}
		st.sent++
		if _, err := io.ReadFull(nc, buf); err != nil {
			st.lost++
			st.err = fmt.Errorf("echo %d: read: %w", seq, err)
			return st
		}
		now := time.Now()
		if !bytes.Equal(buf, frame) {
			st.lost++
			st.err = fmt.Errorf("echo %d: got %.40q", seq, buf)
			return st
		}
		st.echoed++
		rtt := now.Sub(t0)
		st.maxRTT = max(st.maxRTT, rtt)
		_ = st.hist.RecordValue(rtt.Microseconds())
		if b := int(t0.Sub(start) / bucketSpan); b < len(buckets) {
			for v := rtt.Microseconds(); ; {
				old := buckets[b].Load()
				if old >= v || buckets[b].CompareAndSwap(old, v) {
					break
				}
			}
		}
		if !last.IsZero() {
			st.maxGap = max(st.maxGap, now.Sub(last))
		}
		last = now
		if now.After(next) {
			next = now // behind: no burst to catch up
		}
	}
}
