// Command loadgen drives one scenario against one comparison server and
// prints one JSON object (report.LoadResult) on stdout.
//
//	loadgen -mode echo -addr 127.0.0.1:PORT -conns 100 -pipeline 16 -duration 3s -server-pid PID
//	loadgen -mode broadcast -addr ... -conns 10000 -rounds 20
//	loadgen -mode call -impl simplerpc|simplerpc-async|netrpc -addr ... -conns 100 -pipeline 1
//	loadgen -mode echo -impl nettls|simplerpc-tls|netws|simplerpc-ws ...   # over TLS or WebSocket
//	loadgen -mode handshake -impl nettls|simplerpc-tls -conns 16 ...      # full TLS handshakes per second
//	loadgen -mode connect -impl simplerpc -conns 1 ...                      # the same cycle over any transport
//
// Echo and broadcast run on one gnet client event loop and never decode
// JSON: each frame carries its send time as 19 digits at a fixed offset
// (package wire), so the load generator costs about what the raw gnet
// server costs and the server under test is what saturates first.
// WebSocket echo runs on the same loop, writing masked text frames and
// reading the server's. TLS echo and the handshakes run a goroutine per
// connection on crypto/tls (stream.go). Calls use each library's own
// client, since the client is part of what a call costs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/panjf2000/gnet/v2"

	"github.com/gobwas/ws"
	"github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/procstat"
	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

type options struct {
	mode      string
	impl      string
	addr      string
	conns     int
	pipeline  int
	size      int
	duration  time.Duration
	warmup    time.Duration
	rounds    int
	sources   []string
	serverPID int
	timeout   time.Duration
	transport servers.Transport
}

func main() {
	body()
	os.Exit(exitCode)
}

func body() {
	var o options
	var sources string
	flag.StringVar(&o.mode, "mode", "echo", "echo, broadcast, call, handshake (TLS) or connect (any transport: a connection, its -2 frame, one echo, a close)")
	flag.StringVar(&o.impl, "impl", "", "server implementation (recorded; for -mode call: simplerpc, simplerpc-async or netrpc)")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:30000", "server address")
	flag.IntVar(&o.conns, "conns", 100, "connections")
	flag.IntVar(&o.pipeline, "pipeline", 1, "frames (echo) or calls in flight per connection")
	flag.IntVar(&o.size, "size", wire.DefaultSize, "frame size; the server's -2 frame must announce it")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time (echo, call)")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured load before the measured time")
	flag.IntVar(&o.rounds, "rounds", 20, "measured broadcast rounds (after 2 unmeasured)")
	flag.StringVar(&sources, "sources", "", "comma-separated source IPs to spread connections over (default: the system's choice)")
	flag.IntVar(&o.serverPID, "server-pid", 0, "server process to read CPU time of from /proc")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Second, "bound on connecting, and on each broadcast round")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the load generator to this file")
	transport := flag.String("transport", "", "tcp, tls or ws (default: the transport of -impl: tls for nettls and *-tls, ws for netws and *-ws)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	if sources != "" {
		o.sources = strings.Split(sources, ",")
	}
	switch *transport {
	case "":
		o.transport = servers.TransportOf(o.impl)
	case "tcp":
		o.transport = servers.TCP
	case "tls":
		o.transport = servers.TLS
	case "ws":
		o.transport = servers.WebSocket
	default:
		log.Fatalf("unknown -transport %q", *transport)
	}
	rlimit.RaiseNoFile()

	var res *report.LoadResult
	var err error
	switch {
	case o.mode == "handshake" || o.mode == "connect":
		res, err = runHandshake(o)
	case o.mode == "echo" && o.transport == servers.TLS:
		res, err = runStream(o)
	case o.mode == "broadcast" && o.transport != servers.TCP:
		err = fmt.Errorf("-mode broadcast is for plain TCP servers")
	case o.mode == "echo" || o.mode == "broadcast":
		res, err = runFramed(o)
	case o.mode == "call":
		res, err = runCall(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err == nil {
		err = json.NewEncoder(os.Stdout).Encode(res)
	}
	if err != nil {
		log.Print(err)
		exitCode = 1
	}
}

// exitCode is what main exits with once body has returned, so that body's
// deferred work (writing the profile) runs first.
var exitCode int

// cpuWindow measures the server's and this process's CPU time over the
// measured window.
type cpuWindow struct {
	pid            int
	start          time.Time
	server, client int64
	reads, writes  int64
}

func startCPU(pid int) cpuWindow {
	w := cpuWindow{pid: pid, start: time.Now()}
	if pid > 0 {
		w.server, _ = procstat.CPUTicks(pid)
		w.reads, w.writes, _ = procstat.Syscalls(pid)
	}
	w.client, _ = procstat.CPUTicks(os.Getpid())
	return w
}

// stop fills the CPU fields of r; items is the frames or calls measured.
func (w cpuWindow) stop(r *report.LoadResult, items int64) time.Duration {
	el := time.Since(w.start)
	hz := float64(procstat.ClockTicks())
	if w.pid > 0 {
		if t, err := procstat.CPUTicks(w.pid); err == nil {
			r.ServerCPUS = float64(t-w.server) / hz
			r.ServerCPUUtil = r.ServerCPUS / el.Seconds()
			if items > 0 {
				r.ServerCPUUSPerItem = r.ServerCPUS * 1e6 / float64(items)
			}
		}
		if rd, wr, err := procstat.Syscalls(w.pid); err == nil && items > 0 {
			r.ServerReadsPerItem = float64(rd-w.reads) / float64(items)
			r.ServerWritesPerItem = float64(wr-w.writes) / float64(items)
		}
	}
	if t, err := procstat.CPUTicks(os.Getpid()); err == nil {
		r.ClientCPUUtil = float64(t-w.client) / hz / el.Seconds()
	}
	return el
}

// dialFramed opens n connections, spread over the sources, over the
// transport, and reads each one's -2 frame. fn receives each ready
// connection, from several goroutines at once.
func dialFramed(o options, n int, fn func(i int, nc net.Conn) error) error {
	return dial.ManyVia(o.addr, n, 64, o.sources, wire.SizeFrame(o.size), o.timeout, via(o.transport), fn)
}

// via returns how to dial over t.
func via(t servers.Transport) dial.Via {
	switch t {
	case servers.TLS:
		return dial.Via{TLS: servers.ClientTLS()}
	case servers.WebSocket:
		return dial.Via{WSPath: wire.WSPath}
	}
	return dial.Via{}
}

// framed is the gnet client of the echo and broadcast modes. Its
// callbacks run on the client's one event loop.
type framed struct {
	gnet.BuiltinEventEngine
	size int
	tmpl []byte // echo frame, time zeroed
	base time.Time
	meter
	out []byte // loop-only scratch

	// WebSocket: frames travel in messages, masked with key.
	ws    bool
	key   [4]byte
	plain []byte        // loop-only: an echo frame before masking
	codec wslayer.Codec // loop-only

	// Broadcast.
	round atomic.Uint64
	got   atomic.Int64
	want  int64
	done  chan int64 // the time the last connection got the round's frame
}

const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseStop
)

// meter is what the measuring code of every mode shares: the phase, and
// the histogram and counters filled during the measured window.
type meter struct {
	phase atomic.Int32 // phaseWarm, phaseMeasure, phaseStop

	mu     sync.Mutex // guards hist
	hist   *hdrhistogram.Histogram
	frames atomic.Int64
	errs   atomic.Int64
}

// measure lets the load run for o.warmup, then measures it for
// o.duration: the frames and the CPU of res.
func (m *meter) measure(o options, res *report.LoadResult) {
	time.Sleep(o.warmup)
	w := startCPU(o.serverPID)
	m.phase.Store(phaseMeasure)
	time.Sleep(o.duration)
	m.phase.Store(phaseStop)
	m.mu.Lock()
	//lint:ignore SA2001 a barrier: wait for a batch being recorded
	m.mu.Unlock()
	res.Frames = m.frames.Load()
	el := w.stop(res, res.Frames)
	res.ElapsedS = el.Seconds()
	res.FramesPerS = float64(res.Frames) / el.Seconds()
}

// finish ends a round of OnTraffic: the measured count, the n bytes read
// discarded, the replies written.
func (f *framed) finish(c gnet.Conn, ph int32, measured, n int, out []byte) {
	if ph == phaseMeasure {
		f.mu.Unlock()
		f.frames.Add(int64(measured))
	}
	_, _ = c.Discard(n)
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			f.errs.Add(1)
		}
	}
	f.out = out[:0]
}

func (f *framed) now() int64 { return int64(time.Since(f.base)) }

func (f *framed) OnTraffic(c gnet.Conn) gnet.Action {
	if f.ws {
		return f.onTrafficWS(c)
	}
	n := c.InboundBuffered() / f.size * f.size
	if n == 0 {
		return gnet.None
	}
	b, err := c.Peek(n)
	if err != nil {
		return gnet.None
	}
	now := f.now()
	ph := f.phase.Load()
	out := f.out[:0]
	measured := 0
	if ph == phaseMeasure {
		f.mu.Lock()
	}
	for i := 0; i < n; i += f.size {
		reply, m := f.frame(b[i:i+f.size], now, ph)
		if m {
			measured++
		}
		if reply {
			out = append(out, f.tmpl...)
			wire.PutDigits(out[len(out)-f.size+wire.TimeOff:len(out)-f.size+wire.TimeOff+wire.TimeLen], uint64(now))
		}
	}
	f.finish(c, ph, measured, n, out)
	return gnet.None
}

// onTrafficWS is OnTraffic over WebSocket: each message one frame, the
// replies masked text frames.
func (f *framed) onTrafficWS(c gnet.Conn) gnet.Action {
	b, err := c.Peek(c.InboundBuffered())
	if err != nil || len(b) == 0 {
		return gnet.None
	}
	now := f.now()
	ph := f.phase.Load()
	out := f.out[:0]
	measured := 0
	if ph == phaseMeasure {
		f.mu.Lock()
	}
	off := 0
	var bad error
	for {
		h, payload, n, err := f.codec.ParseFrame(b[off:])
		if errors.Is(err, wslayer.ErrShort) {
			break
		}
		if err == nil && (h.OpCode != ws.OpText || !h.Fin || h.Masked || len(payload) != f.size) {
			err = fmt.Errorf("a frame of opcode %d and %d bytes", h.OpCode, len(payload))
		}
		if err != nil {
			bad = err
			break
		}
		off += n
		reply, m := f.frame(payload, now, ph)
		if m {
			measured++
		}
		if reply {
			wire.PutDigits(f.plain[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(now))
			out = f.codec.AppendFrame(out, ws.OpText, f.plain, true, f.key)
		}
	}
	f.finish(c, ph, measured, off, out)
	if bad != nil {
		f.errs.Add(1)
		return gnet.Close
	}
	return gnet.None
}

// frame handles one frame that arrived at now in phase ph: whether to send
// an echo frame in reply, and whether it was measured. Called with f.mu
// held in phaseMeasure.
func (f *framed) frame(fr []byte, now int64, ph int32) (reply, measured bool) {
	t, ok := wire.Digits(fr[wire.TimeOff : wire.TimeOff+wire.TimeLen])
	switch {
	case !ok:
		f.errs.Add(1)
	case fr[0] == '0':
		if ph == phaseMeasure {
			report.Record(f.hist, now-int64(t))
			measured = true
		}
		reply = ph != phaseStop
	case fr[0] == '1':
		r, ok := wire.Digits(fr[wire.RoundOff : wire.RoundOff+wire.RoundLen])
		if ok && r == f.round.Load() {
			if ph == phaseMeasure {
				report.Record(f.hist, now-int64(t))
				measured = true
			}
			if f.got.Add(1) == f.want {
				select {
				case f.done <- now:
				default:
				}
			}
		}
	default:
		f.errs.Add(1)
	}
	return reply, measured
}

func (f *framed) OnClose(_ gnet.Conn, err error) gnet.Action {
	if f.phase.Load() != phaseStop {
		f.errs.Add(1)
	}
	return gnet.None
}

func runFramed(o options) (*report.LoadResult, error) {
	tmpl, err := wire.EchoFrame(o.size)
	if err != nil {
		return nil, err
	}
	f := &framed{size: o.size, tmpl: tmpl, base: time.Now(), meter: meter{hist: report.NewHist()}, want: int64(o.conns),
		done: make(chan int64, 1), ws: o.transport == servers.WebSocket, plain: slices.Clone(tmpl)}
	_, _ = rand.Read(f.key[:])
	cli, err := gnet.NewClient(f, gnet.WithNumEventLoop(1), gnet.WithReadBufferCap(64<<10),
		gnet.WithWriteBufferCap(16<<10), gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogger(quiet{}))
	if err != nil {
		return nil, err
	}
	if err := cli.Start(); err != nil {
		return nil, err
	}
	conns := make([]gnet.Conn, o.conns)
	err = dialFramed(o, o.conns, func(i int, nc net.Conn) error {
		gc, err := cli.Enroll(nc)
		conns[i] = gc
		return err
	})
	if err != nil {
		f.phase.Store(phaseStop)
		_ = cli.Stop()
		return nil, err
	}
	res := &report.LoadResult{Mode: o.mode, Impl: o.impl, Conns: o.conns, Size: o.size}
	if o.mode == "echo" {
		res.Pipeline = o.pipeline
		err = runEcho(o, f, conns, res)
	} else {
		err = runBroadcast(o, f, conns, res)
	}
	f.phase.Store(phaseStop)
	time.Sleep(50 * time.Millisecond) // let what is in flight arrive
	_ = cli.Stop()
	if err != nil {
		return nil, err
	}
	res.Errors = f.errs.Load()
	res.Latency = report.Summarize(f.hist)
	return res, nil
}

func runEcho(o options, f *framed, conns []gnet.Conn, res *report.LoadResult) error {
	var codec wslayer.Codec // not the loop's: echoes may arrive meanwhile
	for _, c := range conns {
		var b []byte
		for range o.pipeline {
			fr := slices.Clone(f.tmpl)
			wire.PutDigits(fr[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(f.now()))
			if f.ws {
				b = codec.AppendFrame(b, ws.OpText, fr, true, f.key)
			} else {
				b = append(b, fr...)
			}
		}
		if err := c.AsyncWrite(b, nil); err != nil {
			return err
		}
	}
	f.measure(o, res)
	if res.Frames == 0 {
		return errors.New("no echo came back")
	}
	return nil
}

// runBroadcast makes the first connection send a frame on opcode 1, which
// the server sends to every connection, and times each round until the
// last connection has it.
func runBroadcast(o options, f *framed, conns []gnet.Conn, res *report.LoadResult) error {
	bf, err := wire.BroadcastFrame(o.size)
	if err != nil {
		return err
	}
	const warmRounds = 2
	rounds := report.NewHist()
	var w cpuWindow
	var round uint64
	for k := 0; k < warmRounds+o.rounds; k++ {
		if k == warmRounds {
			w = startCPU(o.serverPID)
			f.phase.Store(phaseMeasure)
		}
		round++
		f.got.Store(0)
		f.round.Store(round)
		select { // a late completion
		case <-f.done:
		default:
		}
		frame := append([]byte(nil), bf...)
		t0 := f.now()
		wire.PutDigits(frame[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(t0))
		wire.PutDigits(frame[wire.RoundOff:wire.RoundOff+wire.RoundLen], round)
		if err := conns[0].AsyncWrite(frame, nil); err != nil {
			return err
		}
		timer := time.NewTimer(o.timeout)
		select {
		case t1 := <-f.done:
			if k >= warmRounds {
				report.Record(rounds, t1-t0)
				res.RoundUS = append(res.RoundUS, float64(t1-t0)/1e3)
				res.Rounds++
			}
		case <-timer.C:
			if k >= warmRounds {
				res.Rounds++
				res.Incomplete++
			}
			log.Printf("round %d: %d of %d connections got the frame within %v", round, f.got.Load(), f.want, o.timeout)
		}
		timer.Stop()
		time.Sleep(20 * time.Millisecond)
	}
	f.phase.Store(phaseStop)
	f.mu.Lock()
	//lint:ignore SA2001 a barrier: wait for a batch being recorded
	f.mu.Unlock()
	res.Frames = f.frames.Load()
	el := w.stop(res, int64(res.Rounds))
	res.ElapsedS = el.Seconds()
	res.FramesPerS = float64(res.Frames) / el.Seconds()
	res.RoundP50 = float64(rounds.ValueAtQuantile(50)) / 1e3
	if res.Rounds == res.Incomplete {
		return fmt.Errorf("no broadcast round completed")
	}
	return nil
}

// stopContext returns a context that ends after d.
func stopContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

type quiet struct{}

func (quiet) Debugf(string, ...any) {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(string, ...any) {}
