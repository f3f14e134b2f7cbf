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
	"slices"
	"strconv"
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

// rawObject encodes as itself: the echo of a call's data.
type rawObject []byte

func (o rawObject) MarshalJSON() ([]byte, error) { return o, nil }

func seqOf(data []byte) int64 {
	var m struct{ Seq int64 }
	if codec.Unmarshal(data, &m) != nil {
		return -1
	}
	return m.Seq
}

// saw counts a broadcast or a direct send with sequence number seq.
func (p *peer) saw(broadcast bool, seq int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if broadcast {
		if p.bFirst < 0 {
			p.bFirst = seq
		}
		p.bLast = max(p.bLast, seq)
		p.bGot++
		return
	}
	p.dLast = max(p.dLast, seq)
	p.dGot++
}

// callUp is a healthy peer's calls to the server.
func (s *soak) callUp(ctx context.Context, p *peer) {
	t := time.NewTicker(s.cfg.callEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		began := time.Now()
		var resp struct{ N int }
		err := p.cl.Call(cctx, opEcho, map[string]int{"n": n}, &resp)
		cancel()
		switch {
		case err == nil && resp.N == n:
			s.record(&s.up, time.Since(began))
			s.callsUp.Add(1)
		case ctx.Err() != nil:
			return
		default:
			if err == nil {
				err = fmt.Errorf("reply %d to call %d", resp.N, n)
			}
			s.errsUp.Add(1)
			s.noteErr("call to the server", err)
		}
	}
}

// callDown calls the healthy peers from the server, in turn.
func (s *soak) callDown(ctx context.Context, k int) {
	t := time.NewTicker(s.cfg.downEvery)
	defer t.Stop()
	for n := k; ; n += s.cfg.downCallers {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := s.peers[n%len(s.peers)]
		id := p.id.Load()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		began := time.Now()
		var resp struct{ N int }
		err := s.srv.Call(cctx, id, opPeerEcho, map[string]int{"n": n}, &resp)
		cancel()
		switch {
		case err == nil && resp.N == n:
			s.record(&s.down, time.Since(began))
			s.callsDown.Add(1)
		case ctx.Err() != nil:
			return
		default:
			if err == nil {
				err = fmt.Errorf("reply %d to call %d", resp.N, n)
			}
			s.errsDown.Add(1)
			s.noteErr("call to a healthy peer", err)
		}
	}
}

// broadcast sends numbered frames to every connection.
func (s *soak) broadcast(ctx context.Context) {
	pad := strings.Repeat("b", s.cfg.padding)
	t := time.NewTicker(s.cfg.broadcastEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := s.broadcasts.Load()
		if err := s.srv.SendAll(opBroadcast, map[string]any{"seq": n, "pad": pad}); err != nil {
			s.bcastErrs.Add(1)
			s.noteErr("broadcast", err)
			continue
		}
		s.broadcasts.Add(1)
	}
}

// direct sends each healthy peer its own numbered frames.
func (s *soak) direct(ctx context.Context) {
	t := time.NewTicker(s.cfg.directEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range s.peers {
			n := p.dSent.Load()
			if err := s.srv.Send(p.id.Load(), opDirect, map[string]int64{"seq": n}); err != nil {
				s.directErrs.Add(1)
				s.noteErr("direct send", err)
				continue
			}
			p.dSent.Add(1)
		}
	}
}

// churn connects, calls once and closes, over and over.
func (s *soak) churn(ctx context.Context, d *engine.Dialer) {
	t := time.NewTicker(s.cfg.churnEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			cl, err := d.Dial(cctx, s.addr)
			if err != nil {
				return err
			}
			defer func() {
				_ = cl.Close()
				<-cl.Done()
			}()
			return cl.Call(cctx, opEcho, map[string]int{"n": 1}, nil)
		}()
		switch {
		case err == nil:
			s.churnCycles.Add(1)
		case ctx.Err() != nil:
			return
		default:
			s.churnErrs.Add(1)
			s.noteErr("churn", err)
		}
	}
}

// slowPeer holds a connection that reads the -2 frame and nothing more,
// until the server closes it or its life ends, then starts another.
func (s *soak) slowPeer(ctx context.Context) {
	for ctx.Err() == nil {
		nc, err := net.DialTimeout("tcp", s.addr, 10*time.Second)
		if err != nil {
			s.noteErr("slow peer dial", err)
			return
		}
		tc := nc.(*net.TCPConn)
		_ = tc.SetReadBuffer(4 << 10)
		closed := make(chan struct{})
		s.reasonMu.Lock()
		s.watch[nc.LocalAddr().String()] = closed
		s.reasonMu.Unlock()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(nc, make([]byte, s.cfg.size)); err != nil {
			s.noteErr("slow peer's -2 frame", err)
		}
		life := time.NewTimer(s.cfg.slowLife)
		select {
		case <-closed:
			s.slowClosed.Add(1)
		case <-life.C:
		case <-ctx.Done():
		}
		life.Stop()
		_ = tc.SetLinger(0) // its unread backlog would hold the socket otherwise
		_ = nc.Close()
		s.reasonMu.Lock()
		delete(s.watch, nc.LocalAddr().String())
		s.reasonMu.Unlock()
		s.slowCycles.Add(1)
	}
}

// settle waits until every healthy peer got what the server sent it, or
// until d, and returns the frames they lost.
func (s *soak) settle(d time.Duration) int64 {
	deadline := time.Now().Add(d)
	sent := s.broadcasts.Load()
	for {
		var missing int64
		for _, p := range s.peers {
			p.mu.Lock()
			if p.bFirst >= 0 {
				missing += sent - p.bFirst - p.bGot
			}
			missing += p.dSent.Load() - p.dGot
			p.mu.Unlock()
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(20 * time.Millisecond) // a poll of counters, at the end of a run
	}
}

// waitBaseline waits until descriptors and goroutines are back to the
// baseline, or d, and returns them.
func waitBaseline(fds, g int, d time.Duration) (int, int) {
	deadline := time.Now().Add(d)
	for {
		f, _ := countFDs()
		n := runtime.NumGoroutine()
		if f <= fds && n <= g+2 || time.Now().After(deadline) {
			return f, n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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
