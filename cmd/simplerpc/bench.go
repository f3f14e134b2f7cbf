package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// benchOptions are bench's flags.
type benchOptions struct {
	tls       clientTLSOptions
	addr      string
	conns     int
	duration  time.Duration
	pipeline  int
	size      int
	loops     int
	sources   int
	json      bool
	plot      string
	broadcast bool
	rounds    int
	timeout   time.Duration
	metrics   string // --metrics-url
}

// newBenchCmd builds the bench subcommand.
func newBenchCmd(wrap runWrapper) *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a server started with 'simplerpc serve'",
		Long: `bench opens --conns connections on the engine's client, all on --loops
shared event loops (no goroutine per connection), waits until every one
knows the server's message size, then measures.

Echo mode (the default) keeps --pipeline frames in flight on every
connection: each frame on opcode 0 carries its send time, the demo server
echoes it, and the echo is timed and replaced by a new frame. It runs for
--duration.

Broadcast mode (--broadcast) measures send-to-all: one connection sends a
frame on opcode 1, the demo server sends it to every connection, and the
round lasts until all of them have it. It runs --rounds rounds, or until
--duration.

--size is the opcode and JSON object per frame, in bytes; a frame is always
the server's message size on the wire, and a --size that does not fit it
is reduced. At the end bench prints throughput and latency percentiles
(HdrHistogram), or one JSON object with --json; --plot draws the latency
distribution. A progress line is shown on stderr when it is a terminal.

For large --conns against an IPv4 loopback address the connections are
spread over source addresses 127.0.0.2, 127.0.0.3, ... (one per 20000
connections, or --sources), past the ephemeral port range of one source.
When the file-descriptor limit is reached bench says so and goes on with
the connections it has.

--timeout bounds the set-up (dialing and every message size, together),
each broadcast round and the close at the end. A connection lost during
the run makes bench exit 1 after its results; when every connection is
lost it stops at once. A broadcast round that some connections never get
within --timeout makes it exit 1 too, saying how many.`,
		Example: `  simplerpc bench --addr 127.0.0.1:30000 --conns 1000 --duration 10s --pipeline 16 --size 256
  simplerpc bench --conns 100 --duration 5s --json --plot latency.png
  simplerpc bench --broadcast --conns 1000 --rounds 200`,
		Args: cobra.NoArgs,
		RunE: wrap(func(cmd *cobra.Command, _ []string) error {
			return bench(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "server address: host:port, tcp://host:port, tls://host:port, ws://host:port/path, wss://host:port/path or unix:///path")
	addClientTLSFlags(f, &o.tls)
	f.StringVar(&o.metrics, "metrics-url", "", "scrape the server's Prometheus metrics here before and after, and print what changed (serve --metrics-addr)")
	f.IntVar(&o.conns, "conns", 100, "number of connections")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to measure")
	f.IntVar(&o.pipeline, "pipeline", 16, "frames in flight per connection (echo mode)")
	f.IntVar(&o.size, "size", 256, "bytes of opcode and JSON per frame (at most the server's message size)")
	f.IntVar(&o.loops, "loops", 1, "client event loops shared by all connections")
	f.IntVar(&o.sources, "sources", 0, "source addresses to spread connections over (0: one per 20000 connections on loopback)")
	f.BoolVar(&o.json, "json", false, "print the results as one JSON object")
	f.StringVar(&o.plot, "plot", "", "write the latency distribution to this image file (.png, .svg, .pdf)")
	f.BoolVar(&o.broadcast, "broadcast", false, "measure send-to-all (opcode 1) instead of echoes")
	f.IntVar(&o.rounds, "rounds", 100, "broadcast rounds")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on the set-up (dial and message size, all connections), on each broadcast round, and on closing")
	_ = cmd.MarkFlagFilename("plot", "png", "svg", "pdf")
	return cmd
}

// validate rejects flag values bench cannot use, as usage errors.
func (o *benchOptions) validate() error {
	switch {
	case o.conns < 1:
		return usagef("--conns must be at least 1")
	case o.duration <= 0:
		return usagef("--duration must be positive")
	case o.pipeline < 1:
		return usagef("--pipeline must be at least 1")
	case o.size < 1:
		return usagef("--size must be positive")
	case o.loops < 1 || o.loops > 256:
		return usagef("--loops must be within 1..256")
	case o.sources < 0:
		return usagef("--sources must not be negative")
	case o.rounds < 1:
		return usagef("--rounds must be at least 1")
	case o.timeout <= 0:
		return usagef("--timeout must be positive")
	}
	if err := checkAddr(o.addr, false); err != nil {
		return err
	}
	if _, err := o.tls.clientOptions(o.addr); err != nil {
		return err
	}
	if o.metrics != "" {
		if err := checkMetricsURL(o.metrics); err != nil {
			return err
		}
	}
	if o.plot != "" {
		return checkPlotFile(o.plot)
	}
	return nil
}

// payload builds the frames bench sends: {"t":NANOS,"p":"xxx..."} for
// echoes and {"r":ROUND,"t":NANOS,"p":"xxx..."} for broadcasts, padded so
// that opcode and object take the target size. NANOS counts from the
// start of the run on the monotonic clock.
type payload struct {
	target int // opcode and object bytes
	pad    string
}

// minPayload is the smallest object bench can send: room for the fields
// and a 19-digit time.
const minPayload = len(`1{"r":1000000000,"t":1000000000000000000,"p":""}`)

// newPayload returns a builder of objects that fill target bytes.
func newPayload(target int) payload {
	return payload{target: target, pad: strings.Repeat("x", target)}
}

// build appends to b the object for opcode op with time t and, for
// round > 0, the round number.
func (p payload) build(b []byte, op codec.Opcode, round int64, t time.Duration) []byte {
	if round > 0 {
		b = append(b, `{"r":`...)
		b = strconv.AppendInt(b, round, 10)
		b = append(b, `,"t":`...)
	} else {
		b = append(b, `{"t":`...)
	}
	b = strconv.AppendInt(b, int64(t), 10)
	b = append(b, `,"p":"`...)
	n := p.target - len(b) - len(`"}`) - len(strconv.Itoa(int(op)))
	if n > 0 {
		b = append(b, p.pad[:n]...)
	}
	return append(b, `"}`...)
}

// stampOf reads the "t" (and "r") fields of an echo of an object built by
// [payload.build]. The engine hands over only well-formed JSON objects;
// bench's own compact form is read without a decoder, and any other (the
// original Python server re-encodes with ", " and ": " separators and its
// own key order, PROTOCOL §1.1) is decoded. ok is false when "t" is not a
// non-negative integer.
func stampOf(obj []byte) (round int64, t time.Duration, ok bool) {
	if r, rest, found := intField(obj, `{"r":`); found {
		if v, _, found := intField(rest, `,"t":`); found {
			return r, time.Duration(v), true
		}
	} else if v, _, found := intField(obj, `{"t":`); found {
		return 0, time.Duration(v), true
	}
	var m struct {
		R *int64 `json:"r"`
		T *int64 `json:"t"`
	}
	if codec.Unmarshal(obj, &m) != nil || m.T == nil || *m.T < 0 || (m.R != nil && *m.R < 0) {
		return 0, 0, false
	}
	if m.R != nil {
		round = *m.R
	}
	return round, time.Duration(*m.T), true
}

// intField parses prefix followed by a non-negative decimal integer at
// the start of b, up to a ',' or '}', returning the value and what
// follows.
func intField(b []byte, prefix string) (int64, []byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0, nil, false
	}
	b = b[len(prefix):]
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 18; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	if i == 0 || i == len(b) || (b[i] != ',' && b[i] != '}') {
		return 0, nil, false
	}
	return v, b[i:], true
}

// benchRun is the state shared by the event loops' callbacks and the main
// goroutine. It is safe for concurrent use by multiple goroutines.
type benchRun struct {
	base    time.Time // the origin of the frames' times
	payload payload
	hist    *shardedHist
	bufs    sync.Pool // *[]byte for frames being built

	running     atomic.Bool
	armed       atomic.Bool  // every connection is ready: losses count
	frames      atomic.Int64 // echoes or deliveries measured
	errors      atomic.Int64
	disconnects atomic.Int64  // connections lost, not closed by bench
	allLost     chan struct{} // closed when the last connection is lost

	mu        sync.Mutex // guards the fields below
	live      int64      // connections not lost
	firstLost error      // why the first one was
	// Broadcast rounds.
	round     int64            // the round in progress, 0 between rounds
	received  int64            // deliveries of the round in progress
	expected  int64            // deliveries that complete it
	latest    time.Duration    // the slowest delivery of the round so far
	got       map[uint64]int64 // the last round each connection received, by id
	roundDone chan time.Duration
}

// now returns the time since the run's origin, on the monotonic clock.
func (b *benchRun) now() time.Duration { return time.Since(b.base) }

// arm starts counting lost connections, n of them ready.
func (b *benchRun) arm(n int) {
	b.mu.Lock()
	b.live = int64(n)
	b.mu.Unlock()
	b.armed.Store(true)
}

// onDisconnect counts a connection lost during the run, on the event loop:
// closed by the server or the network, not by bench. A connection lost in
// the middle of a broadcast round is no longer waited for.
func (b *benchRun) onDisconnect(c handler.Conn, reason error) {
	if !b.armed.Load() || errors.Is(reason, engine.ErrShutdown) || errors.Is(reason, engine.ErrLocalClose) {
		return
	}
	b.disconnects.Add(1)
	b.errors.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.firstLost == nil {
		b.firstLost = reason
	}
	if b.round != 0 && b.got[c.ID()] != b.round {
		b.expected--
		if b.received > 0 && b.received >= b.expected {
			b.endRound()
		}
	}
	if b.live--; b.live == 0 {
		close(b.allLost)
	}
}

// lost returns why the first connection was lost, or nil.
func (b *benchRun) lost() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.firstLost
}

// onEcho handles an echo on the event loop: it records the round trip and
// sends the next frame.
func (b *benchRun) onEcho(c handler.Conn, data []byte) error {
	now := b.now()
	if !b.running.Load() {
		return nil
	}
	_, t, ok := stampOf(data)
	if !ok {
		b.errors.Add(1)
		return nil
	}
	if !b.hist.record(c.ID(), now-t) {
		return nil // the run is over
	}
	b.frames.Add(1)
	b.send(c, opEcho, 0)
	return nil
}

// send sends a new frame on c. SendRaw copies the object before it
// returns, so the buffer goes back to the pool at once.
func (b *benchRun) send(c handler.Conn, op codec.Opcode, round int64) {
	bp := b.bufs.Get().(*[]byte)
	*bp = b.payload.build((*bp)[:0], op, round, b.now())
	if err := c.SendRaw(op, *bp); err != nil {
		b.errors.Add(1)
	}
	b.bufs.Put(bp)
}

// onBroadcast handles a delivery on the event loop: it records its
// latency and ends the round with the last expected delivery.
func (b *benchRun) onBroadcast(c handler.Conn, data []byte) error {
	now := b.now()
	round, t, ok := stampOf(data)
	if !ok || round == 0 {
		b.errors.Add(1)
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if round != b.round || b.got[c.ID()] == round {
		return nil // a late delivery of a round that timed out
	}
	if !b.hist.record(c.ID(), now-t) {
		return nil // the run is over
	}
	b.frames.Add(1)
	b.got[c.ID()] = round
	b.latest = max(b.latest, now-t)
	if b.received++; b.received == b.expected {
		b.endRound()
	}
	return nil
}

// endRound reports the round complete to runBroadcast. b.mu is held.
func (b *benchRun) endRound() {
	select {
	case b.roundDone <- b.latest:
	default:
	}
}

// startRound begins round k, expecting a delivery on every connection not
// lost, and returns how many.
func (b *benchRun) startRound(k int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.round, b.received, b.expected, b.latest = k, 0, b.live, 0
	return b.live
}

// stopRound ends the round in progress and returns its deliveries, and
// those it expected.
func (b *benchRun) stopRound() (received, expected int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.round = 0
	return b.received, b.expected
}

// currentRound returns the round in progress, for the progress line.
func (b *benchRun) currentRound() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.round
}

// bench runs the load generator.
func bench(ctx context.Context, stdout, stderr io.Writer, o benchOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	sources, err := sourceAddrs(o.addr, o.conns, o.sources)
	if err != nil {
		return err
	}
	if soft, _ := fdLimit(); soft > 0 && uint64(o.conns)+64 > soft {
		fmt.Fprintf(stderr, "note: --conns %d is close to or over this process's file-descriptor limit (%d)\n", o.conns, soft)
	}

	b := &benchRun{
		base:      time.Now(),
		hist:      newShardedHist(4 * o.loops),
		allLost:   make(chan struct{}),
		got:       make(map[uint64]int64),
		roundDone: make(chan time.Duration, 1),
	}
	b.bufs.New = func() any { return new([]byte) }
	r := handler.NewRouter()
	if o.broadcast {
		r.On(opBroadcast, b.onBroadcast)
	} else {
		r.On(opEcho, b.onEcho)
	}
	r.On(codec.OpFailure, func(handler.Conn, []byte) error { b.errors.Add(1); return nil })
	tlsOpts, err := o.tls.clientOptions(o.addr)
	if err != nil {
		return err
	}
	d, err := engine.NewDialer(r, append(append(sizeOptions(), tlsOpts...),
		engine.WithEventLoops(o.loops),
		engine.WithDialTimeout(o.timeout),
		engine.WithOnDisconnect(b.onDisconnect),
	)...)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer closeDialer(d, o.timeout, stderr)

	// The first scrape comes before the dials, so that the connections
	// bench opens are in the change.
	var before map[string]float64
	if o.metrics != "" {
		sc, cancel := context.WithTimeout(ctx, o.timeout)
		before, err = scrape(sc, o.metrics)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: --metrics-url: %w", err)
		}
	}
	// One --timeout for the set-up: dialing and the message size.
	setup := time.Now()
	sctx, cancel := context.WithTimeout(ctx, o.timeout)
	dialed, err := dialAll(sctx, d, o.addr, sources, o.conns, stderr)
	if err == nil {
		dialed.clients, err = waitReady(sctx, dialed.clients, o.timeout, stderr)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("bench: interrupted while connecting")
		}
		return fmt.Errorf("bench: %w", err)
	}
	clients := dialed.clients
	b.arm(len(clients))
	size := clients[0].MessageSize()
	target := o.size
	if target > size {
		fmt.Fprintf(stderr, "note: --size %d does not fit the server's message size %d: using %d\n", o.size, size, size)
		target = size
	}
	if target < minPayload {
		if minPayload > size {
			return fmt.Errorf("bench: the server's message size %d is too small for bench's frames (%d bytes)", size, minPayload)
		}
		fmt.Fprintf(stderr, "note: --size %d is smaller than bench's smallest frame: using %d\n", target, minPayload)
		target = minPayload
	}
	b.payload = newPayload(target)
	fmt.Fprintf(stderr, "connected %d connections in %v from %d source address(es); message size %d B, payload %d B\n",
		len(clients), time.Since(setup).Round(time.Millisecond), min(len(sources), len(clients)), size, target)

	rep := &benchReport{
		Config: benchConfig{
			Addr: o.addr, Conns: o.conns, DurationS: o.duration.Seconds(), Size: o.size,
			Loops: o.loops, Sources: o.sources,
		},
		Conns:        len(clients),
		Sources:      min(len(sources), len(clients)),
		MessageSize:  size,
		PayloadBytes: target,
	}
	var series []plotSeries
	var title string
	if o.broadcast {
		rep.Mode = "broadcast"
		rep.Config.Rounds = o.rounds
		rounds := runBroadcast(ctx, stderr, b, clients, o, rep)
		rep.RoundLatency = new(summarize(rounds))
		series = []plotSeries{{"each delivery", b.hist.merged()}, {"all reached (per round)", rounds}}
		title = fmt.Sprintf("simplerpc bench --broadcast: %d connections, %d rounds, message size %d B",
			rep.Conns, rep.Rounds, size)
	} else {
		rep.Mode = "echo"
		rep.Config.Pipeline = o.pipeline
		if err := runEcho(ctx, stderr, b, clients, o, rep); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		series = []plotSeries{{"round trip", b.hist.merged()}}
		title = fmt.Sprintf("simplerpc bench: %d connections x pipeline %d, %s echoes/s, message size %d B",
			rep.Conns, o.pipeline, siFormat(rep.FramesPerS), size)
	}
	rep.Latency = summarize(series[0].h)
	rep.Errors = b.errors.Load()
	rep.Disconnects = b.disconnects.Load()
	rep.BytesPerS = rep.FramesPerS * float64(size)

	if o.plot != "" {
		if err := writePlot(o.plot, title, series); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", o.plot)
	}
	if o.metrics != "" {
		// After the run, before closing: the connections are still open.
		sc, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.timeout)
		after, err := scrape(sc, o.metrics)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "warning: --metrics-url: %v\n", err)
		} else {
			rep.Server = metricDeltas(before, after)
		}
	}
	if o.json {
		err = writeJSONLine(stdout, rep)
	} else if err = rep.writeTable(stdout); err == nil && rep.Server != nil {
		err = writeDeltas(stdout, rep.Server)
	}
	if err != nil {
		return err
	}
	return verdict(rep, b.lost())
}

// verdict returns the error that makes a finished run exit 1, or nil:
// connections lost (firstLost says why the first was), broadcast rounds
// that did not reach every connection, or nothing measured.
func verdict(rep *benchReport, firstLost error) error {
	var incomplete string
	if rep.IncompleteRounds > 0 {
		incomplete = fmt.Sprintf("%d of %d rounds did not reach every connection (%d deliveries missing; at worst %d of %d connections never got the frame)",
			rep.IncompleteRounds, rep.Rounds, rep.MissedDeliveries, rep.worstMissed, rep.worstOf)
	}
	switch lost := rep.Disconnects; {
	case lost > 0 && lost == int64(rep.Conns):
		return fmt.Errorf("bench: lost all %d connections, %.2fs into the run (first: %s)", lost, rep.ElapsedS, describeEnd(firstLost))
	case lost > 0 && incomplete != "":
		return fmt.Errorf("bench: lost %d of %d connections during the run (first: %s); %s", lost, rep.Conns, describeEnd(firstLost), incomplete)
	case lost > 0:
		return fmt.Errorf("bench: lost %d of %d connections during the run (first: %s)", lost, rep.Conns, describeEnd(firstLost))
	case incomplete != "":
		return errors.New("bench: " + incomplete)
	case rep.Frames == 0 && !rep.Interrupted:
		return errors.New("bench: no frame was measured: does the server echo opcode 0 and send opcode 1 to all, as 'simplerpc serve' does?")
	}
	return nil
}

// closeDialer closes d, waiting at most timeout for it: the engine waits
// up to a second for each connection that has not finished closing, and a
// connection still waiting for its message size ignores Close, so a
// server that stopped answering could hold the exit for long. Past the
// timeout the process's exit closes the sockets.
func closeDialer(d *engine.Dialer, timeout time.Duration, stderr io.Writer) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Close()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		fmt.Fprintf(stderr, "warning: closing the connections took longer than --timeout %v; exiting without waiting\n", timeout)
	}
}

// runEcho keeps the pipeline full on every connection for the duration.
func runEcho(ctx context.Context, stderr io.Writer, b *benchRun, clients []*engine.Client, o benchOptions, rep *benchReport) error {
	stop := startProgress(stderr, func(elapsed time.Duration, last *int64) string {
		n := b.frames.Load()
		rate := float64(n-*last) / progressEvery.Seconds()
		*last = n
		return fmt.Sprintf("%5.1fs  %s echoes/s  %d echoes  %d errors", elapsed.Seconds(), siFormat(rate), n, b.errors.Load())
	})
	start := time.Now()
	b.running.Store(true)
	for _, cl := range clients {
		for range o.pipeline {
			b.send(cl, opEcho, 0)
		}
	}
	timer := time.NewTimer(o.duration)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-b.allLost: // nothing left to measure
	case <-ctx.Done():
		rep.Interrupted = true
	}
	b.running.Store(false)
	b.hist.close()
	elapsed := time.Since(start)
	stop()
	rep.ElapsedS = elapsed.Seconds()
	// Counted from the closed histogram: the frame counter can still move
	// under a callback that was under way when the run stopped.
	rep.Frames = b.hist.merged().TotalCount()
	rep.FramesPerS = float64(rep.Frames) / elapsed.Seconds()
	return nil
}

// runBroadcast runs the broadcast rounds and returns the histogram of
// round times.
func runBroadcast(ctx context.Context, stderr io.Writer, b *benchRun, clients []*engine.Client, o benchOptions, rep *benchReport) *hdrhistogram.Histogram {
	rounds := newHist()
	stop := startProgress(stderr, func(elapsed time.Duration, _ *int64) string {
		return fmt.Sprintf("%5.1fs  round %d/%d  %d deliveries  %d errors", elapsed.Seconds(), b.currentRound(), o.rounds,
			b.frames.Load(), b.errors.Load())
	})
	defer stop()
	start := time.Now()
	deadline := time.NewTimer(o.duration)
	defer deadline.Stop()
	b.running.Store(true)
	defer b.running.Store(false)
run:
	for k := int64(1); k <= int64(o.rounds); k++ {
		sender := liveClient(clients)
		if sender == nil {
			break // every connection is lost
		}
		live := b.startRound(k)
		b.send(sender, opBroadcast, k)
		roundTimer := time.NewTimer(o.timeout)
		stopped := false
		select {
		case d := <-b.roundDone:
			_ = rounds.RecordValue(min(max(int64(d), histMin), histMax))
			rep.Rounds++
		case <-roundTimer.C:
			got, want := b.stopRound()
			rep.Rounds++
			rep.IncompleteRounds++
			rep.MissedDeliveries += want - got
			if want-got > rep.worstMissed {
				rep.worstMissed, rep.worstOf = want-got, live
			}
			b.errors.Add(1)
			fmt.Fprintf(stderr, "warning: round %d: %d of %d connections got the frame within %v\n",
				k, got, want, o.timeout)
		case <-deadline.C: // the duration ends the run; this round is not counted
			stopped = true
		case <-b.allLost:
			stopped = true
		case <-ctx.Done():
			rep.Interrupted = true
			stopped = true
		}
		roundTimer.Stop()
		b.stopRound()
		// Drop a completion that raced with the timeout.
		select {
		case <-b.roundDone:
		default:
		}
		if stopped {
			break run
		}
	}
	b.hist.close()
	elapsed := time.Since(start)
	rep.ElapsedS = elapsed.Seconds()
	rep.Frames = b.hist.merged().TotalCount()
	rep.FramesPerS = float64(rep.Frames) / elapsed.Seconds()
	return rounds
}

// liveClient returns the first client not closed, or nil.
func liveClient(clients []*engine.Client) *engine.Client {
	for _, cl := range clients {
		select {
		case <-cl.Done():
		default:
			return cl
		}
	}
	return nil
}

// progressEvery is how often the progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// startProgress redraws a progress line on stderr every progressEvery
// while stderr is a terminal, and returns a function that stops it and
// clears the line. line formats the text; last is its own state.
func startProgress(stderr io.Writer, line func(elapsed time.Duration, last *int64) string) (stop func()) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		start := time.Now()
		var last int64
		for {
			select {
			case <-done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(f, "\r\033[K"+line(time.Since(start), &last))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
