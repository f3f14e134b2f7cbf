// This file holds a worker process of the broadcast measurement: its
// peers, raw TCP and ws://, each checking the sequence of broadcasts it
// receives, and, in one worker, the broadcaster that sends them.
//
// The driver speaks to a worker on its stdin, one line at a time: "end"
// stops the broadcaster, which answers "sent N"; "count N" tells every
// worker how many were sent: it waits (at most -drain) for its peers to
// have them all, then prints what they saw as JSON and exits.

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// maxSeq bounds the sequence numbers a peer keeps track of (a bit each).
const maxSeq = 1 << 24

// castResult is what one worker's peers saw, printed as JSON.
type castResult struct {
	Peers       int   `json:"peers"`
	Disconnects int   `json:"disconnects"` // peers whose connection failed before the end
	Unexpected  int64 `json:"unexpected"`  // frames that were no broadcast (a -8, a close)
	Expected    int64 `json:"expected"`
	Received    int64 `json:"received"`
	Lost        int64 `json:"lost"`
	Duplicated  int64 `json:"duplicated"`
	Reordered   int64 `json:"reordered"` // arrived after a later one
	// Gaps is each peer's longest time between two deliveries, in
	// microseconds; GapAt the unix microseconds its longest ended.
	Gaps   []int64                `json:"gaps_us"`
	GapAt  []int64                `json:"gap_at_us"`
	Sent   int64                  `json:"sent,omitempty"` // the broadcaster's
	Errors []string               `json:"errors,omitempty"`
	Lat    *hdrhistogram.Snapshot `json:"latency"` // send to delivery, microseconds
}

// castPeer is one listening connection and what it saw. Its reading
// goroutine owns every field but distinct, which the worker polls.
type castPeer struct {
	nc       net.Conn
	isWS     bool
	stopping *atomic.Bool
	distinct atomic.Int64 // distinct sequence numbers seen

	seen          []uint64 // a bit per sequence number
	top           int64    // the highest seen, -1 before any
	received      int64
	dup, reord    int64
	unexpected    int64
	last          time.Time
	maxGap        time.Duration
	maxGapAt      time.Time
	lat           *hdrhistogram.Histogram
	err           error
	firstStranger string // the first frame that was no broadcast
}

// read receives frames until the connection fails or the worker stops it.
func (p *castPeer) read(size int) {
	br := bufio.NewReaderSize(p.nc, 16<<10)
	buf := make([]byte, size)
	for {
		var frame []byte
		var err error
		if p.isWS {
			var h ws.Header
			h, frame, err = wslayer.ReadFrame(br)
			if err == nil && (h.OpCode != ws.OpText || !h.Fin) {
				p.stranger(fmt.Sprintf("a WebSocket frame of opcode %d, fin %v: %.40q", h.OpCode, h.Fin, frame))
				if h.OpCode == ws.OpClose {
					err = errors.New("a WebSocket close frame")
				} else {
					continue
				}
			}
		} else {
			_, err = io.ReadFull(br, buf)
			frame = buf
		}
		if err != nil {
			if !p.stopping.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
				p.err = err
			}
			return
		}
		p.saw(frame, time.Now())
	}
}

// name is the peer's local address, or "a peer" without a connection.
func (p *castPeer) name() string {
	if p.nc == nil {
		return "a peer"
	}
	return p.nc.LocalAddr().String()
}

// stranger notes a frame that is no broadcast.
func (p *castPeer) stranger(what string) {
	p.unexpected++
	if p.firstStranger == "" {
		p.firstStranger = what
	}
}

// saw checks one frame received at now.
func (p *castPeer) saw(frame []byte, now time.Time) {
	if len(frame) < wire.RoundOff+wire.RoundLen || frame[0] != '1' {
		p.stranger(fmt.Sprintf("%.40q", frame))
		return
	}
	seq, ok := wire.Digits(frame[wire.RoundOff : wire.RoundOff+wire.RoundLen])
	sent, okT := wire.Digits(frame[wire.TimeOff : wire.TimeOff+wire.TimeLen])
	if !ok || !okT || seq >= maxSeq {
		p.stranger(fmt.Sprintf("%.40q", frame))
		return
	}
	p.received++
	if !p.last.IsZero() {
		if gap := now.Sub(p.last); gap > p.maxGap {
			p.maxGap, p.maxGapAt = gap, now
		}
	}
	p.last = now
	_ = p.lat.RecordValue(max(1, now.Sub(time.Unix(0, int64(sent))).Microseconds()))
	w, bit := seq/64, uint64(1)<<(seq%64)
	for uint64(len(p.seen)) <= w {
		p.seen = append(p.seen, 0)
	}
	switch s := int64(seq); {
	case p.seen[w]&bit != 0:
		p.dup++
		return
	case s < p.top:
		p.reord++
	default:
		p.top = s
	}
	p.seen[w] |= bit
	p.distinct.Add(1)
}

// has counts the distinct sequence numbers below n that p saw.
func (p *castPeer) has(n int64) int64 {
	var k int64
	for i, w := range p.seen {
		if lo := int64(i) * 64; lo+64 <= n {
			k += int64(bits.OnesCount64(w))
		} else if lo < n {
			k += int64(bits.OnesCount64(w & (1<<(n-lo) - 1)))
		}
	}
	return k
}

// castWorker dials ntcp raw TCP peers to addr and nws ws:// peers to
// wsAddr from source; with send, its first TCP peer is the broadcaster
// too, sending rate numbered broadcasts a second until "end". Without
// send, on Linux, one goroutine reads all the peers (castpoll_linux.go).
// It waits at most drain for the last broadcasts.
func castWorker(addr, wsAddr, source string, ntcp, nws, size, rate int, send bool, drain time.Duration) error {
	if limit := rlimit.RaiseNoFile(); uint64(ntcp+nws)+64 > limit {
		return fmt.Errorf("%d connections do not fit the file-descriptor limit %d", ntcp+nws, limit)
	}
	var stopping atomic.Bool
	peers := make([]*castPeer, ntcp+nws)
	add := func(off int, isWS bool) func(int, net.Conn) error {
		return func(i int, nc net.Conn) error {
			peers[off+i] = &castPeer{nc: nc, isWS: isWS, stopping: &stopping, top: -1,
				lat: hdrhistogram.New(1, 60_000_000, 3)}
			return nil
		}
	}
	want := wire.SizeFrame(size)
	if err := dial.Many(addr, ntcp, 32, []string{source}, want, 30*time.Second, add(0, false)); err != nil {
		return err
	}
	if nws > 0 {
		err := dial.ManyVia(wsAddr, nws, 32, []string{source}, want, 30*time.Second, dial.Via{WSPath: wire.WSPath}, add(ntcp, true))
		if err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	var pr *pollReader
	if !send {
		var err error
		if pr, err = newPollReader(peers, size); err != nil && !errors.Is(err, errNoPoll) {
			return err
		}
	}
	if pr != nil {
		defer pr.close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr.run(&stopping)
		}()
	} else {
		for _, p := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.read(size)
			}()
		}
	}
	var bc *broadcaster
	if send {
		var err error
		if bc, err = startBroadcaster(peers[0].nc, size, rate); err != nil {
			return err
		}
	}
	fmt.Println("ready", len(peers))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "end":
			if bc == nil {
				return errors.New(`"end" to a worker without the broadcaster`)
			}
			fmt.Println("sent", bc.stop())
		case "count":
			n, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				return fmt.Errorf("count: %w", err)
			}
			awaitAll(peers, n, drain)
			stopping.Store(true)
			for _, p := range peers {
				_ = p.nc.SetReadDeadline(time.Now())
			}
			wg.Wait()
			res := tally(peers, n)
			if bc != nil {
				res.Sent = bc.sent.Load()
				if bc.err != nil {
					if peers[0].err == nil {
						res.Disconnects++
					}
					res.Errors = append(res.Errors, "broadcaster: "+bc.err.Error())
				}
			}
			for _, p := range peers {
				_ = p.nc.Close()
			}
			return json.NewEncoder(os.Stdout).Encode(res)
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	return errors.New("stdin closed before the count")
}

// awaitAll waits, at most drain, for every peer to have seen n distinct
// broadcasts (or to have failed).
func awaitAll(peers []*castPeer, n int64, drain time.Duration) {
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) {
		done := true
		for _, p := range peers {
			if p.distinct.Load() < n {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(10 * time.Millisecond) // a poll: the peers' goroutines block in read
	}
}

// tally totals what the peers saw, n broadcasts having been sent.
func tally(peers []*castPeer, n int64) castResult {
	res := castResult{Peers: len(peers)}
	lat := hdrhistogram.New(1, 60_000_000, 3)
	for _, p := range peers {
		got := p.has(n)
		res.Expected += n
		res.Received += p.received
		res.Lost += n - got
		res.Duplicated += p.dup
		res.Reordered += p.reord
		res.Unexpected += p.unexpected
		res.Gaps = append(res.Gaps, p.maxGap.Microseconds())
		res.GapAt = append(res.GapAt, p.maxGapAt.UnixMicro())
		lat.Merge(p.lat)
		if p.err != nil {
			res.Disconnects++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", p.name(), p.err))
			}
		}
		if p.firstStranger != "" && len(res.Errors) < 5 {
			res.Errors = append(res.Errors, fmt.Sprintf("%s: %d frames that were no broadcast, the first %s",
				p.name(), p.unexpected, p.firstStranger))
		}
	}
	res.Lat = lat.Export()
	return res
}

// broadcaster sends numbered send-to-all frames at a steady rate.
type broadcaster struct {
	sent atomic.Int64
	quit chan struct{}
	done chan struct{}
	err  error // set before done closes
}

// startBroadcaster sends on nc rate broadcasts a second, each with its
// sequence number (the round, from 0) and the time it was sent.
func startBroadcaster(nc net.Conn, size, rate int) (*broadcaster, error) {
	frame, err := wire.BroadcastFrame(size)
	if err != nil {
		return nil, err
	}
	b := &broadcaster{quit: make(chan struct{}), done: make(chan struct{})}
	every := time.Second / time.Duration(rate)
	go func() {
		defer close(b.done)
		next := time.Now()
		for seq := uint64(0); ; seq++ {
			select {
			case <-b.quit:
				return
			case <-time.After(time.Until(next)):
			}
			next = next.Add(every) // behind, it catches up: the count is what matters
			wire.PutDigits(frame[wire.RoundOff:wire.RoundOff+wire.RoundLen], seq)
			wire.PutDigits(frame[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(time.Now().UnixNano()))
			_ = nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := nc.Write(frame); err != nil {
				b.err = fmt.Errorf("broadcast %d: %w", seq, err)
				return
			}
			b.sent.Add(1)
		}
	}()
	return b, nil
}

// stop stops the broadcasts and returns how many were sent.
func (b *broadcaster) stop() int64 {
	close(b.quit)
	<-b.done
	return b.sent.Load()
}
