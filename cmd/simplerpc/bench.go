package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

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
	load      loadOptions
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

With --op, --payload or --payload-file bench sends the application's
frames instead (one frame, or a file of them, one 'OPCODE JSON' a line,
sent in turn), each timed to its answer: the next frame back on its
opcode (or --reply-opcode), in order per connection; with --call each is
a call timed to its reply.

The loop is closed by default: --pipeline frames in flight per
connection. --rate N opens it: N frames or calls per second in all, sent
at their intended times whatever the answers do, each timed from its
intended send time, so that a stall of the server shows in the
percentiles instead of holding the sender back (coordinated omission).
--hdr-log FILE writes the latency histogram in HdrHistogram's log format.

--size is the opcode and JSON object per bench frame, in bytes; a frame is always
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
  simplerpc bench --broadcast --conns 1000 --rounds 200
  simplerpc bench --conns 10 --rate 5000 --hdr-log run.hlog
  simplerpc bench --call --op 3 --payload '{"room": "lobby"}' --rate 1000`,
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
	addLoadFlags(f, &o.load)
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
	if err := o.load.validate(o.broadcast); err != nil {
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

// benchRun is the state shared by the event loops' callbacks and the main
// goroutine. It is safe for concurrent use by multiple goroutines.
type benchRun struct {
	base    time.Time // the origin of the frames' times
	payload payload
	hist    *shardedHist
	bufs    sync.Pool // *[]byte for frames being built
	load    *load     // the application's frames or calls; nil for bench's own echoes
	// openLoop: frames go out at --rate, not in answer to answers.
	openLoop bool

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
	if !b.openLoop {
		b.sendAt(c, opEcho, 0, now)
	}
	return nil
}

// benchConn is what bench sends on: a client (which holds frames while it
// reconnects) or, from a callback, the connection it runs for.
type benchConn interface {
	ID() uint64
	SendRaw(op codec.Opcode, obj []byte) error
	CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error
}

// send sends a new frame on c, stamped now.
func (b *benchRun) send(c benchConn, op codec.Opcode, round int64) {
	b.sendAt(c, op, round, b.now())
}

// sendAt sends a new frame on c stamped at (its intended send time in the
// open loop). SendRaw copies the object before it returns, so the buffer
// goes back to the pool at once.
func (b *benchRun) sendAt(c benchConn, op codec.Opcode, round int64, at time.Duration) {
	bp := b.bufs.Get().(*[]byte)
	*bp = b.payload.build((*bp)[:0], op, round, at)
	if err := c.SendRaw(op, *bp); err != nil {
		b.errors.Add(1)
	}
	b.bufs.Put(bp)
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
	b.openLoop = o.load.rate > 0
	if o.load.custom() {
		b.load = &load{frames: o.load.frames, call: o.load.call, replyOp: codec.Opcode(o.load.replyOp),
			ctx: ctx, pending: make(map[uint64]*inFlight)}
	}
	r := handler.NewRouter()
	switch {
	case o.broadcast:
		r.On(opBroadcast, b.onBroadcast)
	case b.load != nil:
		r.Forward(b.onAnswer) // calls' replies come by their ids, not here
	default:
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
	target, err := b.fitLoad(stderr, clients, o, size)
	if err != nil {
		return err
	}
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
	rep.Config.Rate = o.load.rate
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
		switch {
		case o.load.call:
			rep.Mode = "calls"
		case b.load != nil:
			rep.Mode = "frames"
		}
		if !b.openLoop {
			rep.Config.Pipeline = o.pipeline
		}
		start := time.Now()
		runLoad(ctx, stderr, b, clients, o, rep)
		series = []plotSeries{{"round trip", b.hist.merged()}}
		title = fmt.Sprintf("simplerpc bench: %d connections x pipeline %d, %s %s/s, message size %d B",
			rep.Conns, o.pipeline, siFormat(rep.FramesPerS), rep.Mode, size)
		if b.openLoop {
			title = fmt.Sprintf("simplerpc bench: %d connections, %s %s/s asked, %s answered, message size %d B",
				rep.Conns, siFormat(o.load.rate), rep.Mode, siFormat(rep.FramesPerS), size)
		}
		if o.load.hdrLog != "" {
			comment := fmt.Sprintf("simplerpc bench %s: %s, %d connections, rate %g/s (0: closed loop), latency in ns",
				rep.Mode, o.addr, rep.Conns, o.load.rate)
			if err := writeHdrLog(o.load.hdrLog, series[0].h, start, time.Duration(rep.ElapsedS*float64(time.Second)), comment); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			fmt.Fprintf(stderr, "wrote %s\n", o.load.hdrLog)
		}
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
	case rep.Frames == 0 && !rep.Interrupted && rep.Mode == "frames":
		return errors.New("bench: no answer was measured: does the server answer these frames on their opcode (or on --reply-opcode)?")
	case rep.Frames == 0 && !rep.Interrupted && rep.Mode == "calls":
		return errors.New("bench: no reply was measured: does the server answer calls on these opcodes?")
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
