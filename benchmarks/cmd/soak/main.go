// Command soak runs a simplerpc server and its clients in one process for a
// long time, with every kind of traffic at once, and samples what would
// grow if something leaked: the server's descriptors, the live heap, the
// goroutines and call latency, and the frames healthy peers lost.
//
//	benchmarks/soak                       # 10 minutes, pinned to core 1
//	benchmarks/soak -duration 1m -interval 2s
//
// The traffic, all together for -duration:
//
//   - healthy peers (-healthy, engine clients on one Dialer) call the
//     server every -call-every, answer the server's calls, and count the
//     broadcasts and the direct sends they receive: each carries a
//     sequence number, so a gap is a lost frame;
//   - the server broadcasts (SendAll) every -broadcast-every, sends each
//     healthy peer a numbered frame every -direct-every, and calls the
//     healthy peers in turn (-down-callers goroutines, each every
//     -down-every);
//   - churners (-churn goroutines) connect, call once and close, every
//     -churn-every each;
//   - slow peers (-slow raw connections) read the -2 frame and then never
//     read again: the server closes them as slow consumers (the outbound
//     cap is -max-outbound), and each is replaced when closed (or after
//     -slow-life).
//
// Every -interval it prints a row: the connections open, the descriptors
// of the server's sockets (the listener and the accepted connections, from
// /proc/net/tcp) and of the whole process (/proc/self/fd), the live heap
// after a GC, the goroutines, the calls made each way and their p99, the
// churn cycles, the broadcasts sent, the frames lost by healthy peers and
// the errors so far. At the end it stops the traffic, lets the frames in
// flight arrive, counts the exact loss, closes everything and checks that
// the descriptors and goroutines are back where they started; then it
// prints a verdict: FLAT when nothing grew from the first half of the run
// to the second (past a warm-up; medians, each with a slack: 5% and 4 for
// the server's descriptors, 20% and 2 MiB for the live heap, 10% and 10 for
// the goroutines, 3x and 5 ms for the p99s), no frame was lost, no call,
// send or churn cycle failed, and the descriptors and goroutines came back
// after the shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"

	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
)

// Opcodes of the soak's traffic.
const (
	opBroadcast = 1 // server to all: {"seq":n}
	opEcho      = 2 // call, client to server
	opDirect    = 3 // server to one healthy peer: {"seq":n}
	opPeerEcho  = 4 // call, server to a healthy peer
	opHello     = 5 // call: a healthy peer tells the server its index
)

type config struct {
	duration, interval         time.Duration
	healthy, churn, slow       int
	downCallers                int
	downEvery                  time.Duration
	callEvery, broadcastEvery  time.Duration
	directEvery, churnEvery    time.Duration
	slowLife                   time.Duration
	size, maxOutbound, padding int
	warmup                     float64
	keepAlive                  time.Duration
	markdown                   string
}

func main() {
	var c config
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long the traffic runs")
	flag.DurationVar(&c.interval, "interval", 5*time.Second, "time between samples")
	flag.IntVar(&c.healthy, "healthy", 50, "healthy peers")
	flag.IntVar(&c.churn, "churn", 4, "goroutines that connect, call once and close")
	flag.IntVar(&c.slow, "slow", 5, "peers that stop reading")
	flag.IntVar(&c.downCallers, "down-callers", 2, "goroutines calling the healthy peers from the server")
	flag.DurationVar(&c.downEvery, "down-every", 4*time.Millisecond, "time between the calls of each server-side caller")
	flag.DurationVar(&c.callEvery, "call-every", 50*time.Millisecond, "time between the calls of each healthy peer")
	flag.DurationVar(&c.broadcastEvery, "broadcast-every", 10*time.Millisecond, "time between broadcasts")
	flag.DurationVar(&c.directEvery, "direct-every", 50*time.Millisecond, "time between the direct sends to each healthy peer")
	flag.DurationVar(&c.churnEvery, "churn-every", 20*time.Millisecond, "time between the connections of each churner")
	flag.DurationVar(&c.slowLife, "slow-life", 2*time.Minute, "a slow peer the server has not closed by then is replaced")
	flag.IntVar(&c.size, "size", 1024, "message size")
	flag.IntVar(&c.maxOutbound, "max-outbound", 256<<10, "the server's outbound cap per connection (WithMaxOutbound)")
	flag.IntVar(&c.padding, "padding", 512, "bytes of padding in each broadcast")
	flag.Float64Var(&c.warmup, "warmup", 0.1, "share of the samples left out of the verdict")
	flag.DurationVar(&c.keepAlive, "keepalive", -1, "WithTCPKeepAlive for the server and the clients (0 turns it off; negative keeps the engine's default)")
	flag.StringVar(&c.markdown, "markdown", "", "also write the table and the verdict to this file")
	flag.Parse()
	rlimit.RaiseNoFile()
	ok, err := run(c, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// peer is one healthy client and what it has received.
type peer struct {
	index int
	cl    *engine.Client
	id    atomic.Uint64 // its net id on the server, once it said hello

	mu     sync.Mutex // guards the counts below
	bFirst int64      // first broadcast seen, -1 before
	bLast  int64
	bGot   int64
	dLast  int64 // last direct send seen, -1 before
	dGot   int64

	dSent atomic.Int64 // direct sends the server queued to it
}

// lost returns the frames missing between the first and the last seen:
// what arrived out of order or not at all.
func (p *peer) lost() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	if p.bFirst >= 0 {
		n += p.bLast - p.bFirst + 1 - p.bGot
	}
	return n + p.dLast + 1 - p.dGot
}

// soak is one run.
type soak struct {
	cfg   config
	srv   *engine.Server
	addr  string
	port  int
	peers []*peer

	latMu    sync.Mutex // guards up, down
	up, down *hdrhistogram.Histogram

	callsUp, callsDown     atomic.Int64
	errsUp, errsDown       atomic.Int64
	churnCycles, churnErrs atomic.Int64
	broadcasts             atomic.Int64
	slowCycles, slowClosed atomic.Int64
	directErrs, bcastErrs  atomic.Int64

	reasonMu sync.Mutex // guards reasons, watch
	reasons  map[string]int
	watch    map[string]chan struct{} // a slow peer's local address -> closed when the server closes it
	firstErr atomic.Pointer[string]
}

func (s *soak) noteErr(what string, err error) {
	msg := what + ": " + err.Error()
	s.firstErr.CompareAndSwap(nil, &msg)
}

func (s *soak) record(h **hdrhistogram.Histogram, d time.Duration) {
	s.latMu.Lock()
	_ = (*h).RecordValue(d.Microseconds())
	s.latMu.Unlock()
}

// takeLatency returns the interval's p99 each way and starts anew.
func (s *soak) takeLatency() (up, down time.Duration) {
	s.latMu.Lock()
	defer s.latMu.Unlock()
	up = time.Duration(s.up.ValueAtQuantile(99)) * time.Microsecond
	down = time.Duration(s.down.ValueAtQuantile(99)) * time.Microsecond
	s.up.Reset()
	s.down.Reset()
	return up, down
}

// reasonName groups disconnect reasons for the report.
func reasonName(err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, engine.ErrSlowConsumer):
		return "slow consumer"
	case errors.Is(err, engine.ErrWriteDeadline):
		return "write deadline"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, engine.ErrShutdown):
		return "shutdown"
	case errors.Is(err, engine.ErrLocalClose):
		return "local"
	}
	return err.Error()
}

func run(cfg config, w io.Writer) (bool, error) {
	baseFDs, _ := countFDs()
	baseG := runtime.NumGoroutine()
	s := &soak{cfg: cfg, reasons: map[string]int{}, watch: map[string]chan struct{}{},
		up: hdrhistogram.New(1, 60_000_000, 3), down: hdrhistogram.New(1, 60_000_000, 3)}

	r := handler.NewRouter()
	r.OnCall(opEcho, func(_ handler.Conn, data []byte) (any, error) { return rawObject(data), nil })
	r.OnCall(opHello, func(c handler.Conn, data []byte) (any, error) {
		var m struct{ Peer int }
		if err := codec.Unmarshal(data, &m); err != nil || m.Peer < 0 || m.Peer >= len(s.peers) {
			return nil, handler.ArgumentValueError("no such peer")
		}
		s.peers[m.Peer].id.Store(c.ID())
		return nil, nil
	})
	var shared []engine.Option
	if cfg.keepAlive >= 0 {
		shared = append(shared, engine.WithTCPKeepAlive(cfg.keepAlive))
	}
	srvOpts := []engine.ServerOption{}
	cliOpts := []engine.ClientOption{}
	for _, o := range shared {
		srvOpts = append(srvOpts, o)
		cliOpts = append(cliOpts, o)
	}
	srv, err := engine.NewServer(r, append(srvOpts,
		engine.WithMessageSize(cfg.size),
		engine.WithMaxOutbound(cfg.maxOutbound, engine.SlowClose),
		engine.WithOnDisconnect(func(c handler.Conn, reason error) {
			s.reasonMu.Lock()
			s.reasons[reasonName(reason)]++
			ch := s.watch[c.RemoteAddr()]
			delete(s.watch, c.RemoteAddr())
			s.reasonMu.Unlock()
			if ch != nil {
				close(ch)
			}
		}))...)
	if err != nil {
		return false, err
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		return false, err
	}
	s.srv, s.addr = srv, srv.Addr().String()
	s.port = srv.Addr().(*net.TCPAddr).Port

	// Healthy peers.
	cr := handler.NewRouter()
	cr.On(opBroadcast, func(c handler.Conn, data []byte) error {
		if p, ok := c.Value().(*peer); ok {
			p.saw(true, seqOf(data))
		}
		return nil
	})
	cr.On(opDirect, func(c handler.Conn, data []byte) error {
		if p, ok := c.Value().(*peer); ok {
			p.saw(false, seqOf(data))
		}
		return nil
	})
	cr.OnCall(opPeerEcho, func(_ handler.Conn, data []byte) (any, error) { return rawObject(data), nil })
	healthyD, err := engine.NewDialer(cr, cliOpts...)
	if err != nil {
		return false, err
	}
	churnD, err := engine.NewDialer(handler.NewRouter(), cliOpts...)
	if err != nil {
		return false, err
	}
	ctx := context.Background()
	s.peers = make([]*peer, cfg.healthy)
	for i := range s.peers {
		cl, err := healthyD.Dial(ctx, s.addr)
		if err != nil {
			return false, fmt.Errorf("healthy peer %d: %w", i, err)
		}
		p := &peer{index: i, cl: cl, bFirst: -1, bLast: -1, dLast: -1}
		cl.Conn().SetValue(p)
		s.peers[i] = p
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.Call(hctx, opHello, map[string]int{"peer": i}, nil)
		cancel()
		if err != nil {
			return false, fmt.Errorf("healthy peer %d hello: %w", i, err)
		}
	}

	// Cancelled, not timed out: with a deadline, a dial or a call made just
	// before it fails with the deadline a moment before ctx.Err() says so,
	// and would count as an error of the run.
	traffic, stop := context.WithCancel(ctx)
	defer stop()
	time.AfterFunc(cfg.duration, stop)
	var wg sync.WaitGroup
	spawn := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	for _, p := range s.peers {
		spawn(func() { s.callUp(traffic, p) })
	}
	for k := range cfg.downCallers {
		spawn(func() { s.callDown(traffic, k) })
	}
	spawn(func() { s.broadcast(traffic) })
	spawn(func() { s.direct(traffic) })
	for range cfg.churn {
		spawn(func() { s.churn(traffic, churnD) })
	}
	for range cfg.slow {
		spawn(func() { s.slowPeer(traffic) })
	}

	var samples []sample
	start := time.Now()
	tick := time.NewTicker(cfg.interval)
	fmt.Fprintf(w, "soak: %v against %s: %d healthy peers, %d churners, %d slow peers, %d-byte frames, cap %d KiB, GOMAXPROCS %d\n\n",
		cfg.duration, s.addr, cfg.healthy, cfg.churn, cfg.slow, cfg.size, cfg.maxOutbound>>10, runtime.GOMAXPROCS(0))
	fmt.Fprintln(w, tableHeader)
	var last sample
	for done := false; !done; {
		select {
		case <-tick.C:
		case <-traffic.Done():
			done = true
		}
		if done && len(samples) > 0 && time.Since(start)-last.at < time.Second {
			break // the last tick came as the traffic stopped
		}
		cur := s.sample(start, last)
		samples = append(samples, cur)
		last = cur
		fmt.Fprintln(w, cur.row())
	}
	tick.Stop()
	wg.Wait()

	// The traffic has stopped: what is in flight arrives, then the loss is
	// exact.
	lost := s.settle(5 * time.Second)
	_ = churnD.Close()
	_ = healthyD.Close()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	endFDs, endG := waitBaseline(baseFDs, baseG, 5*time.Second)

	v := judge(cfg, samples, lost, s)
	v.fdsBefore, v.fdsAfter, v.gBefore, v.gAfter = baseFDs, endFDs, baseG, endG
	v.flat = v.flat && endFDs <= baseFDs && endG <= baseG+2
	report := v.String()
	fmt.Fprintln(w)
	fmt.Fprint(w, report)
	if cfg.markdown != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n", tableHeader)
		for _, smp := range samples {
			fmt.Fprintln(&b, smp.row())
		}
		fmt.Fprintf(&b, "\n%s", report)
		if err := os.WriteFile(cfg.markdown, []byte(b.String()), 0o644); err != nil {
			return v.flat, err
		}
	}
	return v.flat, nil
}
