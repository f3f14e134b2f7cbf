// bench's load: what it sends (its own stamped echoes, or any
// application's frames or calls), closed-loop or open-loop at a fixed
// rate, and the HdrHistogram log of the latencies.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/spf13/pflag"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// loadOptions are bench's flags for what it sends and how fast.
type loadOptions struct {
	op          int     // --op; -1: not given
	payload     string  // --payload
	payloadFile string  // --payload-file
	call        bool    // --call
	replyOp     int     // --reply-opcode; -1: each frame's own opcode
	rate        float64 // --rate; 0: closed loop
	hdrLog      string  // --hdr-log

	frames []outFrame // parsed by validate
}

// addLoadFlags adds the load flags to f.
func addLoadFlags(f *pflag.FlagSet, o *loadOptions) {
	f.IntVar(&o.op, "op", -1, "send frames on this opcode (with --payload, {} by default) instead of bench's own echoes")
	f.StringVar(&o.payload, "payload", "", "the JSON object of each frame (with --op, 0 by default)")
	f.StringVar(&o.payloadFile, "payload-file", "", "send the frames of this file in turn, one 'OPCODE JSON' per line (# comments and blank lines skipped)")
	f.BoolVar(&o.call, "call", false, "send each frame as a call and time its reply (the request/reply extension)")
	f.IntVar(&o.replyOp, "reply-opcode", -1, "one-way frames: the opcode their answers come on (default: each frame's own); answers are matched in order per connection")
	f.Float64Var(&o.rate, "rate", 0, "open loop: send this many frames or calls per second in all, whatever the answers do, and time each from when it should have been sent (0: closed loop, --pipeline in flight)")
	f.StringVar(&o.hdrLog, "hdr-log", "", "write the latency histogram to this file in HdrHistogram's log format")
	_ = cobraFileFlag(f, "payload-file", "hdr-log")
}

// custom reports whether bench sends the application's frames rather
// than its own stamped echoes.
func (o *loadOptions) custom() bool {
	return o.op >= 0 || o.payload != "" || o.payloadFile != "" || o.call
}

// validate checks the load flags and parses the frames.
func (o *loadOptions) validate(broadcast bool) error {
	switch {
	case o.rate < 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0):
		return usagef("--rate %v must be a finite number of frames per second, 0 for the closed loop", o.rate)
	case o.rate > 0 && o.rate < 1e-3:
		return usagef("--rate %v is below one frame in 1000s", o.rate)
	case o.op < -1:
		return usagef("--op %d: want a non-negative opcode", o.op)
	case o.replyOp < -1:
		return usagef("--reply-opcode %d: want a non-negative opcode", o.replyOp)
	case broadcast && (o.custom() || o.rate > 0):
		return usagef("--broadcast measures its own rounds: no --op, --payload, --payload-file, --call or --rate with it")
	case o.payloadFile != "" && (o.op >= 0 || o.payload != ""):
		return usagef("--payload-file excludes --op and --payload")
	case o.call && o.replyOp >= 0:
		return usagef("--reply-opcode is for one-way frames: a call's reply is matched by its id")
	case o.replyOp >= 0 && !o.custom():
		return usagef("--reply-opcode needs --op, --payload or --payload-file")
	}
	if o.hdrLog != "" {
		if err := checkOutputFile("--hdr-log", o.hdrLog); err != nil {
			return err
		}
	}
	if !o.custom() {
		return nil
	}
	if o.payloadFile != "" {
		frames, err := readFrames(o.payloadFile)
		if err != nil {
			return err
		}
		o.frames = frames
		return nil
	}
	op, text := max(o.op, 0), o.payload
	if text == "" {
		text = "{}"
	}
	obj, err := compactObject([]byte(text))
	if err != nil {
		return usagef("--payload: %w", err)
	}
	o.frames = []outFrame{{op: codec.Opcode(op), obj: obj}}
	return nil
}

// checkOutputFile checks that the directory of an output file exists.
func checkOutputFile(flag, name string) error {
	dir := "."
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir = name[:max(i, 1)]
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usagef("%s %s: the directory %s does not exist", flag, name, dir)
	}
	return nil
}

// maxFrameLines bounds --payload-file.
const maxFrameLines = 1 << 16

// readFrames reads --payload-file: one frame a line, "OPCODE JSON".
func readFrames(name string) ([]outFrame, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, usagef("--payload-file: %v", err)
	}
	defer f.Close()
	var frames []outFrame
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), codec.MaxMessageSize+64)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fr, err := parseSends([]string{line})
		if err != nil {
			return nil, usagef("--payload-file %s:%d: %w", name, n, err)
		}
		if frames = append(frames, fr[0]); len(frames) > maxFrameLines {
			return nil, usagef("--payload-file %s: more than %d frames", name, maxFrameLines)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("--payload-file %s: %v", name, err)
	}
	if len(frames) == 0 {
		return nil, usagef("--payload-file %s: no frame in it", name)
	}
	return frames, nil
}

// checkFrames reports a frame of the load too large for the server's
// message size, before anything is sent.
func (o *loadOptions) checkFrames(cl *engine.Client) error {
	for _, f := range o.frames {
		if err := checkFits(cl, f.op, f.obj, o.call); err != nil {
			return usagef("frame %d %s: %w", f.op, clip(f.obj, 60), err)
		}
	}
	return nil
}

// inFlight is one connection's one-way frames awaiting their answers, by
// their intended send times, oldest first. It is safe for concurrent use
// by multiple goroutines.
type inFlight struct {
	mu    sync.Mutex
	times []time.Duration
	sent  bool // a frame has gone out: a frame on an answer's opcode before that one was pushed, not an answer
}

// load is the part of a run that sends the application's frames or
// calls; bench's own echoes need none of it.
type load struct {
	frames  []outFrame
	call    bool
	replyOp codec.Opcode // -1: the frame's own
	ctx     context.Context
	pending map[uint64]*inFlight // by client id; read-only during the run

	mu   sync.Mutex // guards next
	next int        // the frame sent next
}

// pick returns the frame to send next, in turn.
func (l *load) pick() outFrame {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.frames[l.next]
	l.next = (l.next + 1) % len(l.frames)
	return f
}

// isAnswer reports whether a frame on op answers a one-way frame.
func (l *load) isAnswer(op codec.Opcode) bool {
	if l.replyOp >= 0 {
		return op == l.replyOp
	}
	for _, f := range l.frames {
		if f.op == op {
			return true
		}
	}
	return false
}

// sendNext sends one frame or call on c, due at the time at: bench's own
// echo, or the application's next frame. It runs on the pacer, the main
// goroutine or an event loop.
func (b *benchRun) sendNext(c benchConn, at time.Duration) {
	if b.load == nil {
		b.sendAt(c, opEcho, 0, at)
		return
	}
	f := b.load.pick()
	if b.load.call {
		err := c.CallAsync(b.load.ctx, f.op, json.RawMessage(f.obj), nil, func(err error) { b.onReply(c, at, err) })
		if err != nil {
			b.errors.Add(1)
		}
		return
	}
	q := b.load.pending[c.ID()]
	q.mu.Lock()
	defer q.mu.Unlock() // held over the send, so that the queue's order is the wire's
	q.times = append(q.times, at)
	if err := c.SendRaw(f.op, f.obj); err != nil {
		q.times = q.times[:len(q.times)-1]
		b.errors.Add(1)
		return
	}
	q.sent = true
}

// completed records a frame or call answered on c, due at the time at,
// and in the closed loop sends the next one.
func (b *benchRun) completed(c benchConn, at time.Duration) {
	now := b.now()
	if !b.running.Load() || !b.hist.record(c.ID(), now-at) {
		return
	}
	b.frames.Add(1)
	if !b.openLoop {
		b.sendNext(c, now)
	}
}

// onReply handles the outcome of a call, where the client's callbacks
// run: a failure counts as an error and, in the closed loop, is replaced.
func (b *benchRun) onReply(c benchConn, at time.Duration, err error) {
	if err == nil {
		b.completed(c, at)
		return
	}
	if !b.running.Load() {
		return
	}
	b.errors.Add(1)
	if !b.openLoop && handler.ReasonOf(err) != "" {
		b.sendNext(c, b.now()) // the server answered, with a failure
	}
}

// onAnswer handles an application frame on the event loop (a
// handler.ForwardFunc): the answer to the oldest one-way frame in flight
// on c, when it is on an answer's opcode.
func (b *benchRun) onAnswer(c handler.Conn, op codec.Opcode, _ []byte) error {
	// Before the run, frames the server pushes on connect are not
	// answers, nor those read after it began but before the connection's
	// first frame went out (inFlight.sent); the queues are made before
	// the run too (running orders them).
	if !b.running.Load() || !b.load.isAnswer(op) {
		return nil
	}
	q := b.load.pending[c.ID()]
	if q == nil {
		return nil
	}
	q.mu.Lock()
	if len(q.times) == 0 {
		sent := q.sent
		q.mu.Unlock()
		if sent {
			b.errors.Add(1) // an answer to nothing bench sent
		}
		// Else pushed on connect and read only once the run began, before
		// this connection's first frame went out: not an answer.
		return nil
	}
	at := q.times[0]
	q.times = q.times[1:]
	q.mu.Unlock()
	b.completed(c, at)
	return nil
}

// runLoad measures for the duration: closed loop, --pipeline frames in
// flight on every connection, each answer replaced by a new frame; or
// open loop at --rate, the frames sent on the connections in turn at
// their intended times, whatever the answers do. Each latency runs from
// the frame's intended send time, so that a stalled server delays the
// frames due meanwhile instead of only the one it holds (coordinated
// omission).
func runLoad(ctx context.Context, stderr io.Writer, b *benchRun, clients []*engine.Client, o benchOptions, rep *benchReport) {
	stop := startProgress(stderr, func(elapsed time.Duration, last *int64) string {
		n := b.frames.Load()
		rate := float64(n-*last) / progressEvery.Seconds()
		*last = n
		return fmt.Sprintf("%5.1fs  %s answers/s  %d answers  %d errors", elapsed.Seconds(), siFormat(rate), n, b.errors.Load())
	})
	start := time.Now()
	end := time.NewTimer(o.duration)
	defer end.Stop()
	b.running.Store(true)
	if o.load.rate > 0 {
		rep.Sent = pace(ctx, b, clients, o.load.rate, end.C, rep)
	} else {
		for _, cl := range clients {
			for range o.pipeline {
				b.sendNext(cl, b.now())
			}
		}
		select {
		case <-end.C:
		case <-b.allLost: // nothing left to measure
		case <-ctx.Done():
			rep.Interrupted = true
		}
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
}

// pace sends at rate frames per second in all, on the clients in turn,
// until end fires, every connection is lost or ctx ends, and returns how
// many it sent. A frame's intended time is the run's start plus its
// number over the rate: when the pacer falls behind (a send that blocked,
// a descheduled process) it catches up at once, and the frames keep their
// intended times.
func pace(ctx context.Context, b *benchRun, clients []*engine.Client, rate float64, end <-chan time.Time, rep *benchReport) int64 {
	t0 := b.now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	alwaysReady := make(chan time.Time)
	close(alwaysReady)
	// over waits for due (a nil wait: already due, no waiting) and reports
	// whether the run ended first.
	over := func(wait <-chan time.Time) bool {
		ready := wait
		if ready == nil {
			ready = alwaysReady
		}
		select {
		case <-end:
		case <-b.allLost:
		case <-ctx.Done():
			rep.Interrupted = true
		case <-ready:
			return false
		}
		return true
	}
	for i := int64(0); ; i++ {
		due := t0 + time.Duration(float64(i)*float64(time.Second)/rate)
		var wait <-chan time.Time
		if d := due - b.now(); d > 0 {
			timer.Reset(d)
			wait = timer.C
		}
		if over(wait) {
			return i
		}
		b.sendNext(clients[i%int64(len(clients))], due)
	}
}

// writeHdrLog writes h, the run's latencies in nanoseconds from start
// for elapsed, to name in HdrHistogram's log format (version 1.3): one
// interval, its maximum in milliseconds, as HdrHistogram's tools expect.
func writeHdrLog(name string, h *hdrhistogram.Histogram, start time.Time, elapsed time.Duration, comment string) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("--hdr-log: %w", err)
	}
	startMs := start.UnixMilli()
	h.SetStartTimeMs(startMs)
	h.SetEndTimeMs(startMs + elapsed.Milliseconds())
	w := hdrhistogram.NewHistogramLogWriter(f)
	w.SetBaseTime(startMs)
	for _, step := range []func() error{
		w.OutputLogFormatVersion,
		func() error { return w.OutputComment(comment) },
		func() error { return w.OutputStartTime(startMs) },
		func() error { return w.OutputBaseTime(startMs) },
		w.OutputLegend,
		func() error { return w.OutputIntervalHistogram(h) },
	} {
		if err := step(); err != nil {
			f.Close()
			return fmt.Errorf("--hdr-log: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--hdr-log: %w", err)
	}
	return nil
}
