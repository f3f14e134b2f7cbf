package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Tests of the robustness features (docs/OPERATIONS.md, Bounds): slow consumers,
// limits, idle peers and heartbeats, groups and client reconnection.

// closeEvent is one server-side disconnect.
type closeEvent struct {
	id     uint64
	reason error
	at     time.Time
}

// connEvents records the server's connect and disconnect callbacks.
type connEvents struct {
	opened chan handler.Conn
	closed chan closeEvent
}

func newConnEvents() *connEvents {
	return &connEvents{opened: make(chan handler.Conn, 256), closed: make(chan closeEvent, 256)}
}

func (e *connEvents) options() []engine.ServerOption {
	return []engine.ServerOption{
		engine.WithOnConnect(func(c handler.Conn) { e.opened <- c }),
		engine.WithOnDisconnect(func(c handler.Conn, r error) { e.closed <- closeEvent{c.ID(), r, time.Now()} }),
	}
}

// next returns the next connection opened.
func (e *connEvents) next(ctx context.Context, t *testing.T) handler.Conn {
	t.Helper()
	select {
	case c := <-e.opened:
		return c
	case <-ctx.Done():
		t.Fatal("timed out waiting for a connection")
		return nil
	}
}

// idOf returns the net id of the server's connection to p, dropping the
// connect events of other connections.
func (e *connEvents) idOf(ctx context.Context, t *testing.T, p *rawPeer) uint64 {
	t.Helper()
	local := p.conn.LocalAddr().String()
	for {
		if c := e.next(ctx, t); c.RemoteAddr() == local {
			return c.ID()
		}
	}
}

// eventFor waits for the disconnect of id; the disconnects of other
// connections are dropped.
func (e *connEvents) eventFor(ctx context.Context, t *testing.T, id uint64) closeEvent {
	t.Helper()
	for {
		select {
		case ev := <-e.closed:
			if ev.id == id {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for the disconnect of %d", id)
			return closeEvent{}
		}
	}
}

// reasonFor waits for the disconnect of id and returns its reason.
func (e *connEvents) reasonFor(ctx context.Context, t *testing.T, id uint64) error {
	t.Helper()
	return e.eventFor(ctx, t, id).reason
}

// rawFrame is a frame read by readFrames, or the error that ended reading.
type rawFrame struct {
	op  codec.Opcode
	obj []byte
	err error
}

// readFrames reads frames of the peer's size in a goroutine until the
// connection fails, the last value carrying the error. The goroutine ends,
// closing the channel, with the test at the latest.
func (p *rawPeer) readFrames() <-chan rawFrame {
	ch := make(chan rawFrame)
	done := p.t.Context().Done()
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, p.size)
			var f rawFrame
			if _, err := io.ReadFull(p.r, buf); err != nil {
				f.err = err
			} else {
				f.op, f.obj, f.err = codec.Decode(buf)
			}
			select {
			case ch <- f:
			case <-done:
				return
			}
			if f.err != nil {
				return
			}
		}
	}()
	return ch
}

// seqFrame is the broadcast payload of the slow-consumer tests.
type seqFrame struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad,omitempty"`
}

// expectSeq reads from frames until it got frame seq on opcode 1, failing
// on anything else.
func expectSeq(ctx context.Context, t *testing.T, frames <-chan rawFrame, seq int) {
	t.Helper()
	select {
	case f := <-frames:
		if f.err != nil {
			t.Fatalf("healthy peer, waiting for frame %d: %v", seq, f.err)
		}
		var m seqFrame
		if f.op != 1 || codec.Unmarshal(f.obj, &m) != nil || m.Seq != seq {
			t.Fatalf("healthy peer: want frame %d, got %d %.60s", seq, f.op, f.obj)
		}
	case <-ctx.Done():
		t.Fatalf("healthy peer: timed out waiting for frame %d", seq)
	}
}

// pushLimit bounds what the slow-consumer tests push before giving up.
const pushLimit = 256 << 20

// TestSlowConsumerClose: a peer that stops reading is closed with
// ErrSlowConsumer once its outbound data passes WithMaxOutbound, whether it
// is fed by SendAll or by Send; sends to it then fail, and a healthy peer
// on the same loop gets every broadcast frame in order.
func TestSlowConsumerClose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const size = 16 << 10
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(size), engine.WithMaxOutbound(256<<10, engine.SlowClose))...)
	addr := srv.Addr().String()

	stalled := dialRaw(t, addr)
	stalled.greet(size)
	stalledID := ev.next(ctx, t).ID()
	healthy := dialRaw(t, addr)
	healthy.greet(size)
	ev.next(ctx, t)
	frames := healthy.readFrames()

	// Broadcast in batches of 8 frames (128 KiB), each batch read by the
	// healthy peer before the next, so that only the stalled peer's data
	// can pass the limit.
	pad := strings.Repeat("x", size-64)
	seq, pushed := 0, 0
	var reason error
	for reason == nil {
		if pushed > pushLimit {
			t.Fatalf("the stalled peer is still open after %d MiB", pushed>>20)
		}
		for range 8 {
			if err := srv.SendAll(1, seqFrame{Seq: seq, Pad: pad}); err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			expectSeq(ctx, t, frames, seq)
			seq++
			pushed += size
		}
		select {
		case e := <-ev.closed:
			if e.id != stalledID {
				t.Fatalf("connection %d closed: %v", e.id, e.reason)
			}
			reason = e.reason
		default:
		}
	}
	t.Logf("broadcast: stalled peer closed after %d KiB", pushed>>10)
	if !errors.Is(reason, engine.ErrSlowConsumer) {
		t.Fatalf("disconnect reason %v, want ErrSlowConsumer", reason)
	}
	if err := srv.Send(stalledID, 1, seqFrame{Seq: -1}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Fatalf("send to the closed slow consumer: %v", err)
	}
	// The socket is closed too: reading drains what the kernel held, then EOF.
	if _, err := io.Copy(io.Discard, stalled.r); err != nil {
		t.Fatalf("stalled peer: want EOF, got %v", err)
	}
	if err := srv.SendAll(1, seqFrame{Seq: seq}); err != nil {
		t.Fatal(err)
	}
	expectSeq(ctx, t, frames, seq)

	// Unicast: Send in a tight loop. Either the queue check in Send
	// (ErrOutboundFull) or the buffer check on the loop trips first; the
	// reason is ErrSlowConsumer both ways.
	uni := dialRaw(t, addr)
	uni.greet(size)
	uniID := ev.next(ctx, t).ID()
	var err error
	for pushed = 0; err == nil; pushed += size {
		if pushed > pushLimit {
			t.Fatalf("the stalled peer is still open after %d MiB", pushed>>20)
		}
		err = srv.Send(uniID, 1, seqFrame{Seq: pushed, Pad: pad})
	}
	if !errors.Is(err, engine.ErrOutboundFull) && !errors.Is(err, engine.ErrUnknownConn) && !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Send to a slow consumer: %v", err)
	}
	if r := ev.reasonFor(ctx, t, uniID); !errors.Is(r, engine.ErrSlowConsumer) {
		t.Fatalf("unicast: disconnect reason %v, want ErrSlowConsumer", r)
	}
	t.Logf("unicast: Send failed after %d KiB with %v", pushed>>10, err)
	if st := srv.Stats(); st.Dropped != 0 || st.Conns != 1 {
		t.Fatalf("stats %+v, want nothing dropped and one connection", st)
	}
}

// TestSlowConsumerDrop: under SlowDrop a peer that stops reading stays
// open; the frames that do not fit are dropped whole and counted, so once
// it reads again its stream is still in frame: it gets every frame not
// counted as dropped, in order, then new frames.
func TestSlowConsumerDrop(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const size = 16 << 10
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(size), engine.WithMaxOutbound(256<<10, engine.SlowDrop), engine.WithWriteDeadline(0))...)
	addr := srv.Addr().String()

	stalled := dialRaw(t, addr)
	stalled.greet(size)
	stalledID := ev.next(ctx, t).ID()
	healthy := dialRaw(t, addr)
	healthy.greet(size)
	ev.next(ctx, t)
	frames := healthy.readFrames()

	pad := strings.Repeat("x", size-64)
	seq := 0
	for srv.Stats().Dropped == 0 {
		if seq*size > pushLimit {
			t.Fatalf("nothing dropped after %d MiB", seq*size>>20)
		}
		for range 8 {
			if err := srv.SendAll(1, seqFrame{Seq: seq, Pad: pad}); err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			expectSeq(ctx, t, frames, seq)
			seq++
		}
	}
	// A few more rounds while the peer stays stalled.
	for range 16 {
		if err := srv.SendAll(1, seqFrame{Seq: seq, Pad: pad}); err != nil {
			t.Fatal(err)
		}
		expectSeq(ctx, t, frames, seq)
		seq++
	}
	// The loop writes a broadcast to the healthy peer before the stalled
	// one: an echo from the healthy peer makes sure the last round is done.
	healthy.write(`7{"sync":1}`)
	select {
	case f := <-frames:
		if f.err != nil || f.op != 7 {
			t.Fatalf("want the echo, got %d %.60s %v", f.op, f.obj, f.err)
		}
	case <-ctx.Done():
		t.Fatal("timed out")
	}
	dropped := srv.Stats().Dropped
	t.Logf("sent %d frames (%d KiB), dropped %d", seq, seq*size>>10, dropped)
	if _, ok := srv.Conn(stalledID); !ok {
		t.Fatal("the slow consumer was closed under SlowDrop")
	}
	select {
	case e := <-ev.closed:
		t.Fatalf("connection %d closed: %v", e.id, e.reason)
	default:
	}

	// The peer reads again: exactly the frames not dropped, in order.
	got := stalled.readFrames()
	last := -1
	for range seq - int(dropped) {
		f := <-got
		var m seqFrame
		if f.err != nil || f.op != 1 || codec.Unmarshal(f.obj, &m) != nil || m.Seq <= last {
			t.Fatalf("after frame %d: got %d %.60s %v", last, f.op, f.obj, f.err)
		}
		last = m.Seq
	}
	if err := srv.Send(stalledID, 2, seqFrame{Seq: seq}); err != nil {
		t.Fatalf("send after the peer caught up: %v", err)
	}
	select {
	case f := <-got:
		if f.err != nil || f.op != 2 {
			t.Fatalf("want the frame sent after catching up, got %d %.60s %v", f.op, f.obj, f.err)
		}
	case <-ctx.Done():
		t.Fatal("timed out")
	}
	if d := srv.Stats().Dropped; d != dropped {
		t.Fatalf("dropped %d, then %d", dropped, d)
	}
}

// fleet is a server with healthy clients on one Dialer and, if stalled,
// one raw peer that never reads. Each broadcast frame carries its send
// time; the clients record the delivery latency and check that they get
// every frame once, in order.
type fleet struct {
	srv     *engine.Server
	healthy int
	base    time.Time
	arrived chan struct{}

	mu     sync.Mutex // guards states
	states []fleetClient
}

type fleetClient struct {
	next int
	lat  []time.Duration
	bad  string
}

func newFleet(ctx context.Context, t *testing.T, healthy int, stalled bool) *fleet {
	t.Helper()
	ev := newConnEvents()
	f := &fleet{healthy: healthy, base: time.Now(), arrived: make(chan struct{}, healthy),
		states: make([]fleetClient, healthy)}
	f.srv = startServer(t, handler.NewRouter(), append(ev.options(), engine.WithMaxOutbound(256<<10, engine.SlowDrop), engine.WithWriteDeadline(0))...)
	addr := f.srv.Addr().String()
	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, data []byte) error {
		now := time.Since(f.base)
		var m struct {
			Seq int   `json:"seq"`
			T   int64 `json:"t"`
		}
		err := codec.Unmarshal(data, &m)
		f.mu.Lock()
		st := &f.states[c.Value().(int)]
		switch {
		case err != nil:
			st.bad = err.Error()
		case m.Seq != st.next && st.bad == "":
			st.bad = fmt.Sprintf("frame %d, want %d", m.Seq, st.next)
		default:
			st.lat = append(st.lat, now-time.Duration(m.T))
		}
		st.next = m.Seq + 1
		f.mu.Unlock()
		f.arrived <- struct{}{}
		return nil
	})
	d, err := engine.NewDialer(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for i := range healthy {
		cl, err := d.Dial(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		cl.SetValue(i)
		select {
		case <-cl.Ready():
		case <-ctx.Done():
			t.Fatal("timed out connecting")
		}
		ev.next(ctx, t)
	}
	if stalled {
		p := dialRaw(t, addr)
		p.greet(codec.DefaultMessageSize)
		id := ev.next(ctx, t).ID()
		// 64 KiB frames for the stalled peer alone (docs/PROTOCOL.md §3; it
		// never answers): its backlog passes the limit within the run while
		// the healthy clients keep 1 KiB frames.
		if err := f.srv.SetMessageSize(id, 64<<10); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// round broadcasts frame k and waits until every healthy client has it.
func (f *fleet) round(ctx context.Context, t *testing.T, k int) {
	t.Helper()
	if err := f.srv.SendAll(1, map[string]int64{"seq": int64(k), "t": int64(time.Since(f.base))}); err != nil {
		t.Fatal(err)
	}
	for range f.healthy {
		select {
		case <-f.arrived:
		case <-ctx.Done():
			t.Fatalf("round %d: timed out", k)
		}
	}
}

// latencies checks that every client got the rounds in order and returns
// their latencies, sorted.
func (f *fleet) latencies(t *testing.T, rounds int) []time.Duration {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var lat []time.Duration
	for i, st := range f.states {
		if st.bad != "" || st.next != rounds || len(st.lat) != rounds {
			t.Fatalf("client %d: %d frames, next %d, %s", i, len(st.lat), st.next, st.bad)
		}
		lat = append(lat, st.lat...)
	}
	slices.Sort(lat)
	return lat
}

// quantile returns the q quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1))]
}

// TestBroadcastWithStalledReader: among 100 healthy clients, one peer that
// never reads changes neither what the healthy ones get (every frame, in
// order) nor, beyond noise, how fast: the median delivery latency stays
// within 2x of the same fleet without it. The server's live heap stays bounded: the
// stalled peer's backlog is capped by WithMaxOutbound, the rest is dropped.
func TestBroadcastWithStalledReader(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 2 x 100 clients")
	}
	// Not parallel, so that the package's other tests are paused. The two
	// fleets take turns round by round, so that both see the same noise
	// from the rest of the machine. 800 rounds of 100 frames under -race on
	// a loaded 2-core machine take more than testTimeout: the bound is for
	// a hung run, not a speed target.
	ctx, cancel := context.WithTimeout(t.Context(), 4*testTimeout)
	defer cancel()
	const healthy, rounds = 100, 400
	plain := newFleet(ctx, t, healthy, false)
	stalled := newFleet(ctx, t, healthy, true)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := int64(ms.HeapAlloc)
	for k := range rounds {
		first, second := plain, stalled
		if k%2 == 1 {
			first, second = stalled, plain
		}
		first.round(ctx, t, k)
		second.round(ctx, t, k)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grown := int64(ms.HeapAlloc) - before
	dropped := stalled.srv.Stats().Dropped

	without, with := plain.latencies(t, rounds), stalled.latencies(t, rounds)
	p50, p50s := quantile(without, 0.5), quantile(with, 0.5)
	t.Logf("without a stalled reader: p50 %v p99 %v max %v",
		p50, quantile(without, 0.99), quantile(without, 1))
	t.Logf("with a stalled reader:    p50 %v p99 %v max %v, %d frames dropped; live heap %+d KiB",
		p50s, quantile(with, 0.99), quantile(with, 1), dropped, grown>>10)
	if dropped == 0 {
		t.Fatal("the stalled peer never reached its outbound limit: the run proves nothing")
	}
	// A server that waited on the stalled peer would stall every round (the
	// rounds would not end); one that paid for it in each round would move
	// the median. The tail is not compared: one GC cycle or scheduler
	// hiccup on a loaded machine moves a p99 of a few milliseconds by 3x in
	// either fleet (seen: 24ms against 8.7ms, with the same medians).
	if bound := 2*p50 + 2*time.Millisecond; p50s > bound {
		t.Errorf("p50 with a stalled reader %v > %v (2 x %v + 2ms)", p50s, bound, p50)
	}
	// Without the limit the stalled peer would hold rounds x 64 KiB (25
	// MiB); with it, at most the limit plus one frame on top of the kernel's
	// buffers. 4 MiB leaves room for GC noise.
	if grown > 4<<20 {
		t.Errorf("live heap grew by %d KiB during the run", grown>>10)
	}
}

// TestRateLimit uses WithRateLimit(50, 10, 5): 50 frames a second with
// bursts of 10; a frame over the limit is answered with a RateLimited
// failure and not dispatched; the 5th such frame in a row closes the
// connection with ErrRateLimited.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ev := newConnEvents()
	r := echoRouter()
	r.OnCall(8, func(handler.Conn, []byte) (any, error) { return nil, nil })
	srv := startServer(t, r, append(ev.options(),
		engine.WithMessageSize(128), engine.WithRateLimit(50, 10, 5))...)
	addr := srv.Addr().String()

	t.Run("under the limit", func(t *testing.T) {
		t.Parallel()
		p := dialRaw(t, addr)
		p.greet(128)
		echo := func(from, to int) {
			t.Helper()
			for i := from; i < to; i++ {
				op, obj := p.read()
				if want := fmt.Sprintf(`{"i":%d}`, i); op != 1 || string(obj) != want {
					t.Fatalf("frame %d: got %d %s", i, op, obj)
				}
			}
		}
		// A full burst, then, once the server has taken it (its echoes are
		// back), 20 frames at 40 a second: each comes at least 25 ms after
		// the one before, however late the server reads them, and the
		// bucket has refilled by 1.25 frames meanwhile. Had the pacing
		// started before the server took the burst, a frame could meet an
		// empty bucket that the burst emptied later than the client knew.
		for i := range 10 {
			p.write(fmt.Sprintf(`1{"i":%d}`, i))
		}
		echo(0, 10)
		for i := 10; i < 30; i++ {
			time.Sleep(25 * time.Millisecond) // the rate under test
			p.write(fmt.Sprintf(`1{"i":%d}`, i))
		}
		echo(10, 30)
	})

	t.Run("flood", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t) // made once the subtest runs: it may wait for a slot
		p := dialRaw(t, addr)
		p.greet(128)
		id := ev.idOf(ctx, t, p)
		var burst []byte
		for i := range 30 {
			f, err := codec.Append(nil, 128, 1, map[string]int{"i": i})
			if err != nil {
				t.Fatal(err)
			}
			burst = append(burst, f...)
		}
		if _, err := p.conn.Write(burst); err != nil {
			t.Fatal(err)
		}
		echoes, failures := 0, 0
		for f := range p.readFrames() {
			if f.err != nil {
				if !errors.Is(f.err, io.EOF) {
					t.Fatalf("want EOF after the failures, got %v", f.err)
				}
				break
			}
			switch {
			case f.op == 1:
				echoes++
			case f.op == codec.OpFailure && strings.Contains(string(f.obj), `"reason":"RateLimited"`):
				failures++
			default:
				t.Fatalf("unexpected frame %d %s", f.op, f.obj)
			}
		}
		t.Logf("30 frames at once: %d echoed, %d RateLimited failures, then closed", echoes, failures)
		// The burst passes; a token may come back while the burst is being
		// read (one per 20 ms), which only adds echoes and resets the count.
		if echoes < 10 || failures < 4 || echoes+failures >= 30 {
			t.Fatalf("%d echoes and %d failures", echoes, failures)
		}
		if r := ev.reasonFor(ctx, t, id); !errors.Is(r, engine.ErrRateLimited) {
			t.Fatalf("disconnect reason %v, want ErrRateLimited", r)
		}
	})

	t.Run("calls", func(t *testing.T) {
		// 14 calls at once: 10 pass, the rest (3 or 4) fail with the
		// RateLimited failure, which carries the call's id.
		t.Parallel()
		ctx := testContext(t) // made once the subtest runs: it may wait for a slot
		cl, err := engine.Dial(ctx, addr, handler.NewRouter())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		<-cl.Ready()
		const n = 14
		errs := make(chan error, n)
		for range n {
			go func() { errs <- cl.Call(ctx, 8, map[string]int{}, nil) }()
		}
		ok, limited := 0, 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				ok++
			case handler.ReasonOf(err) == engine.ReasonRateLimited:
				limited++
			default:
				t.Fatalf("call: %v", err)
			}
		}
		t.Logf("%d calls at once: %d answered, %d refused", n, ok, limited)
		if ok < 10 || limited == 0 {
			t.Fatalf("%d answered, %d refused", ok, limited)
		}
	})

	t.Run("client side", func(t *testing.T) {
		// The option applies to a client too: a server that sends it 30
		// frames at once gets RateLimited failures back, then the client
		// closes with ErrRateLimited.
		t.Parallel()
		ctx := testContext(t) // made once the subtest runs: it may wait for a slot
		failures := make(chan string, 32)
		fr := handler.NewRouter()
		handler.Handle(fr, codec.OpFailure, func(_ handler.Conn, f *handler.Error) error { failures <- f.Reason; return nil })
		flooder := startServer(t, fr, engine.WithMessageSize(128),
			engine.WithOnConnect(func(c handler.Conn) {
				for i := range 30 {
					_ = c.Send(1, map[string]int{"i": i})
				}
			}))
		cr := handler.NewRouter()
		cr.On(1, func(handler.Conn, []byte) error { return nil })
		cl, err := engine.Dial(ctx, flooder.Addr().String(), cr, engine.WithRateLimit(50, 10, 5))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("the flooded client is still open")
		}
		if !errors.Is(cl.Err(), engine.ErrRateLimited) {
			t.Fatalf("client closed with %v, want ErrRateLimited", cl.Err())
		}
		select {
		case r := <-failures:
			if r != engine.ReasonRateLimited {
				t.Fatalf("server got failure %q", r)
			}
		case <-ctx.Done():
			t.Fatal("the server got no failure")
		}
	})
}

// TestMaxFramesPerWake uses WithMaxFramesPerWake(8): one peer writes 5000
// frames in one burst to a handler that costs 50µs a frame (a quarter of a
// second in all, on one loop); another peer on the same loop completes its
// round trips while the burst is still being handled, and every frame of
// the burst is handled, in order.
func TestMaxFramesPerWake(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	r := handler.NewRouter()
	r.On(3, func(c handler.Conn, data []byte) error {
		for start := time.Now(); time.Since(start) < 50*time.Microsecond; {
		}
		return c.SendRaw(3, data)
	})
	r.On(4, func(c handler.Conn, data []byte) error { return c.SendRaw(4, data) })
	srv := startServer(t, r, engine.WithMaxFramesPerWake(8))
	const size, n = codec.DefaultMessageSize, 5000

	busy := dialRaw(t, srv.Addr().String())
	busy.greet(size)
	other := dialRaw(t, srv.Addr().String())
	other.greet(size)

	var handled atomic.Int64 // echoes the busy peer got back, checked in order
	started := make(chan struct{})
	busyDone := make(chan error, 1)
	go func() {
		for f := range busy.readFrames() {
			var m struct{ I int64 }
			if f.err != nil || f.op != 3 || codec.Unmarshal(f.obj, &m) != nil || m.I != handled.Load() {
				busyDone <- fmt.Errorf("after %d echoes: %d %.40s %v", handled.Load(), f.op, f.obj, f.err)
				return
			}
			if handled.Add(1) == 1 {
				close(started)
			}
			if handled.Load() == n {
				busyDone <- nil
				return
			}
		}
	}()
	var burst []byte
	for i := range n {
		f, err := codec.Append(nil, size, 3, map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, f...)
	}
	wrote := make(chan error, 1)
	go func() { _, err := busy.conn.Write(burst); wrote <- err }()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the burst is not being handled")
	}

	var slowest time.Duration
	const trips = 10
	for i := range trips {
		start := time.Now()
		other.write(fmt.Sprintf(`4{"trip":%d}`, i))
		if op, obj := other.read(); op != 4 || string(obj) != fmt.Sprintf(`{"trip":%d}`, i) {
			t.Fatalf("round trip %d: got %d %s", i, op, obj)
		}
		slowest = max(slowest, time.Since(start))
	}
	during := handled.Load()
	t.Logf("%d round trips done, slowest %v, with %d of %d burst frames handled", trips, slowest, during, n)
	if during == n {
		t.Error("the round trips waited for the whole burst")
	}
	select {
	case err := <-busyDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("burst: %d of %d frames handled", handled.Load(), n)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestIdleTimeout uses WithIdleTimeout(1s), a timeout that a loaded
// machine's scheduling delays stay well within: a silent peer is closed
// with ErrIdle, not before the timeout; a peer that sends only pings (-6,
// docs/PROTOCOL.md) stays open past 3x the timeout and gets each ping's
// object back in a pong (-7).
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const idle = time.Second
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(128), engine.WithIdleTimeout(idle))...)
	addr := srv.Addr().String()

	dialed := time.Now() // the server's idle clock starts after this
	silent := dialRaw(t, addr)
	silent.greet(128)
	silentID := ev.idOf(ctx, t, silent)
	pinger := dialRaw(t, addr)
	pinger.greet(128)
	pingerID := ev.idOf(ctx, t, pinger)

	start := time.Now()
	for i := 0; time.Since(start) < 3*idle+idle/2; i++ {
		time.Sleep(idle / 4) // the ping interval
		ping := fmt.Sprintf(`{"t":%d}`, i)
		pinger.write("-6" + ping)
		if op, obj := pinger.read(); op != codec.OpPong || string(obj) != ping {
			t.Fatalf("ping %d: got %d %s", i, op, obj)
		}
	}
	if _, ok := srv.Conn(pingerID); !ok {
		t.Fatal("the peer sending pings was closed")
	}

	silent.expectEOF()
	e := ev.eventFor(ctx, t, silentID)
	if !errors.Is(e.reason, engine.ErrIdle) {
		t.Fatalf("silent peer: disconnect reason %v, want ErrIdle", e.reason)
	}
	// The sweep runs every idle/4, so the close comes at 1x to 1.25x plus
	// the loop's delay; how late depends on the machine's load, so only
	// "not before the timeout" is asserted (and the pinger, which outlived
	// 3.5 timeouts, shows that traffic keeps a connection open).
	after := e.at.Sub(dialed)
	t.Logf("silent peer closed %v after it connected", after)
	if after < idle {
		t.Fatalf("silent peer closed after %v, before the idle timeout %v", after, idle)
	}
}

// TestClientHeartbeat uses WithHeartbeat(100ms, 1s) on the client (a
// timeout that a loaded machine's scheduling delays stay well within).
// Against our server, which answers pings, the client stays connected
// until it has had pongs for three timeouts' worth of intervals.
// Against a server that sends the -2 frame and then nothing, never
// reading, the client closes with ErrIdle, not before the timeout has
// passed since that frame (how much later depends on the machine's load:
// only the test's context bounds it).
func TestClientHeartbeat(t *testing.T) {
	t.Parallel()
	const interval, timeout = 100 * time.Millisecond, time.Second

	t.Run("answered", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		srv := startServer(t, echoRouter(), engine.WithMessageSize(128))
		pongs := make(chan struct{}, 64)
		cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(),
			engine.WithHeartbeat(interval, timeout),
			engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
				if op == codec.OpPong {
					select {
					case pongs <- struct{}{}:
					default: // the test has all it reads
					}
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		// The pongs of three timeouts: the heartbeat must hold that long.
		for n := range int(3 * timeout / interval) {
			select {
			case <-pongs:
			case <-cl.Done():
				t.Fatalf("client closed after %d pongs: %v", n, cl.Err())
			case <-ctx.Done():
				t.Fatalf("%d pongs, want %d", n, 3*timeout/interval)
			}
		}
	})

	t.Run("dead server", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		var sent time.Time // before the -2 frame, the last the client receives
		go func() {
			nc, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			f, _ := codec.AppendMessageSize(nil, 128, 128)
			sent = time.Now()
			_, _ = nc.Write(f)
			accepted <- nc // held open, never read, until the test ends
		}()
		cl, err := engine.Dial(ctx, ln.Addr().String(), handler.NewRouter(), engine.WithHeartbeat(interval, timeout))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		nc, ok := <-accepted
		if !ok {
			t.Fatal("accept failed")
		}
		defer nc.Close()
		select {
		case <-cl.Ready():
		case <-ctx.Done():
			t.Fatal("timed out waiting for the -2 frame")
		}
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("the client did not detect the dead server")
		}
		after := time.Since(sent)
		t.Logf("client closed %v after the last frame", after)
		if !errors.Is(cl.Err(), engine.ErrIdle) {
			t.Fatalf("client closed with %v, want ErrIdle", cl.Err())
		}
		if after < timeout {
			t.Fatalf("closed %v after the last frame, before the timeout %v", after, timeout)
		}
	})
}

// TestGroups covers named groups on a server with two loops: Join and
// Leave by net id, SendGroup to members only with the JSON encoded once,
// SendGroupExcept and SendAllExcept skipping one connection, GroupLen, and
// membership ending with the connection.
func TestGroups(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const n = 5
	ids := make([]uint64, n)
	hellos := make(chan struct{}, n)
	sr := handler.NewRouter()
	var idsMu sync.Mutex // guards ids while the clients say hello
	sr.On(1, func(c handler.Conn, data []byte) error {
		var m struct{ I int }
		if err := codec.Unmarshal(data, &m); err != nil {
			return err
		}
		idsMu.Lock()
		ids[m.I] = c.ID()
		idsMu.Unlock()
		hellos <- struct{}{}
		return nil
	})
	ev := newConnEvents()
	srv := startServer(t, sr, append(ev.options(), engine.WithEventLoops(2))...)

	// Each client records what it gets on opcode 9, in order.
	got := make([]*recorder, n)
	cr := handler.NewRouter()
	cr.On(9, func(c handler.Conn, data []byte) error {
		got[c.Value().(int)].add(string(data))
		return nil
	})
	d, err := engine.NewDialer(cr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	clients := make([]*engine.Client, n)
	for i := range n {
		got[i] = newRecorder()
		cl, err := d.Dial(ctx, srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cl.SetValue(i)
		if err := cl.Send(1, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
	}
	for range n {
		select {
		case <-hellos:
		case <-ctx.Done():
			t.Fatal("timed out waiting for the clients")
		}
	}

	// step sends a marker to all, waits until each live client has it, and
	// checks what each got since the last step (the marker included).
	step := 0
	seen := make([]int, n)
	check := func(live []int, want map[int][]string) {
		t.Helper()
		step++
		marker := fmt.Sprintf(`{"step":%d}`, step)
		if err := srv.SendAll(9, rawJSON(marker)); err != nil {
			t.Fatal(err)
		}
		for _, i := range live {
			w := append(slices.Clone(want[i]), marker)
			frames := got[i].wait(t, seen[i]+len(w))
			if g := frames[seen[i]:]; !slices.Equal(g, w) {
				t.Fatalf("step %d: client %d got %q, want %q", step, i, g, w)
			}
			seen[i] += len(w)
		}
	}
	all := []int{0, 1, 2, 3, 4}

	for _, i := range []int{0, 1, 2} {
		if err := srv.Group("room").Join(ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Group("room").Join(ids[0]); err != nil { // joining twice is one membership
		t.Fatal(err)
	}
	if l := srv.Group("room").Len(); l != 3 {
		t.Fatalf("GroupLen %d, want 3", l)
	}
	var encoded atomic.Int32
	if err := srv.Group("room").Send(9, countingValue{&encoded}); err != nil {
		t.Fatal(err)
	}
	hello := `{"hello":"all"}`
	check(all, map[int][]string{0: {hello}, 1: {hello}, 2: {hello}})
	if c := encoded.Load(); c != 1 {
		t.Fatalf("SendGroup encoded the value %d times, want once", c)
	}

	if err := srv.Group("room").SendExcept(ids[0], 9, rawJSON(`{"m":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.SendAllExcept(ids[4], 9, rawJSON(`{"m":"c"}`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Group("nobody").Send(9, rawJSON(`{"m":"x"}`)); err != nil {
		t.Fatal(err)
	}
	b, c := `{"m":"b"}`, `{"m":"c"}`
	check(all, map[int][]string{0: {c}, 1: {b, c}, 2: {b, c}, 3: {c}})

	srv.Group("room").Leave(ids[1])
	srv.Group("room").Leave(ids[3]) // not a member: nothing happens
	if l := srv.Group("room").Len(); l != 2 {
		t.Fatalf("GroupLen after Leave %d, want 2", l)
	}
	if err := srv.Group("room").Send(9, rawJSON(`{"m":"d"}`)); err != nil {
		t.Fatal(err)
	}
	check(all, map[int][]string{0: {`{"m":"d"}`}, 2: {`{"m":"d"}`}})

	// Membership ends with the connection.
	clients[2].Close()
	if r := ev.reasonFor(ctx, t, ids[2]); !errors.Is(r, io.EOF) {
		t.Fatalf("disconnect reason %v", r)
	}
	if l := srv.Group("room").Len(); l != 1 {
		t.Fatalf("GroupLen after a member closed %d, want 1", l)
	}
	if err := srv.Group("room").Send(9, rawJSON(`{"m":"e"}`)); err != nil {
		t.Fatal(err)
	}
	check([]int{0, 1, 3, 4}, map[int][]string{0: {`{"m":"e"}`}})

	for _, id := range []uint64{ids[2], 1 << 40} {
		if err := srv.Group("room").Join(id); !errors.Is(err, engine.ErrUnknownConn) {
			t.Fatalf("Join of closed or unknown id %d: %v", id, err)
		}
	}
	if err := srv.Group("").Send(9, rawJSON(`{}`)); err == nil {
		t.Fatal("SendGroup with an empty name succeeded")
	}
}

// rawJSON is a value that encodes as the given object.
type rawJSON string

func (j rawJSON) MarshalJSON() ([]byte, error) { return []byte(j), nil }

// TestGroupsConcurrent runs Join, Leave, GroupLen and the group sends from
// many goroutines while members connect and disconnect (meaningful under
// -race), then checks that no closed connection is left in any group.
func TestGroupsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, handler.NewRouter(), append(ev.options(), engine.WithEventLoops(2))...)
	cr := handler.NewRouter()
	cr.On(9, func(handler.Conn, []byte) error { return nil })
	d, err := engine.NewDialer(cr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const n = 8
	clients := make([]*engine.Client, n)
	ids := make([]uint64, n)
	for i := range n {
		if clients[i], err = d.Dial(ctx, srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		// Once the client has the -2 frame, the server's connect event for
		// it is queued: it is the only one not yet read.
		select {
		case <-clients[i].Ready():
		case <-ctx.Done():
			t.Fatal("timed out connecting")
		}
		ids[i] = ev.next(ctx, t).ID()
	}
	groups := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 300 {
				group := groups[(g+k)%len(groups)]
				id := ids[(g*7+k)%n]
				switch k % 5 {
				case 0, 1:
					if err := srv.Group(group).Join(id); err != nil && !errors.Is(err, engine.ErrUnknownConn) && !errors.Is(err, engine.ErrClosed) {
						t.Errorf("Join: %v", err)
					}
				case 2:
					srv.Group(group).Leave(id)
				case 3:
					if err := srv.Group(group).SendExcept(id, 9, rawJSON(`{"k":1}`)); err != nil {
						t.Errorf("SendGroupExcept: %v", err)
					}
				case 4:
					_ = srv.Group(group).Len()
					if err := srv.Group(group).Send(9, rawJSON(`{"k":2}`)); err != nil {
						t.Errorf("SendGroup: %v", err)
					}
				}
			}
		})
	}
	// Half the members leave while the goroutines run.
	closed := make(map[uint64]bool)
	for i := 0; i < n; i += 2 {
		clients[i].Close()
		closed[ids[i]] = true
	}
	wg.Wait()
	for range n / 2 {
		select {
		case e := <-ev.closed:
			if !closed[e.id] {
				t.Fatalf("connection %d closed", e.id)
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for the disconnects")
		}
	}
	// Only live connections can be left: removing them empties every group.
	for _, g := range groups {
		for _, id := range ids {
			if !closed[id] {
				srv.Group(g).Leave(id)
			}
		}
		if l := srv.Group(g).Len(); l != 0 {
			t.Fatalf("group %q holds %d closed connections", g, l)
		}
	}
}

// startServerAt starts a server on addr, retrying briefly while the port is
// still held by the previous server; it is shut down when the test ends.
func startServerAt(ctx context.Context, t *testing.T, addr string, r *handler.Router, opts ...engine.ServerOption) *engine.Server {
	t.Helper()
	for {
		srv, err := engine.NewServer(r, opts...)
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Start(context.Background(), addr)
		if err == nil {
			t.Cleanup(func() {
				sctx, cancel := context.WithTimeout(context.Background(), testTimeout)
				defer cancel()
				if err := srv.Shutdown(sctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			})
			return srv
		}
		select {
		case <-ctx.Done():
			t.Fatalf("restart on %s: %v", addr, err)
		case <-time.After(10 * time.Millisecond): // wait for the port
		}
	}
}

// TestReconnect: a client with WithReconnect survives its connection being
// dropped and its server being replaced by a new one on the same address.
// Calls pending when the connection drops fail with ErrClosed; frames sent
// while disconnected are held up to WithMaxHeld and arrive in order once
// reconnected; past the bound Send fails with ErrOutboundFull; the
// reconnect callback runs after each reconnection.
func TestReconnect(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	rec := newRecorder()
	sr := handler.NewRouter()
	sr.On(2, func(c handler.Conn, data []byte) error {
		rec.add(string(data))
		return nil
	})
	// A call on opcode 7 drops the connection instead of answering.
	sr.OnCall(7, func(c handler.Conn, _ []byte) (any, error) {
		_ = c.Close()
		return map[string]int{}, nil
	})
	first := startServer(t, sr)
	addr := first.Addr().String()

	reconnected := make(chan struct{}, 8)
	disconnected := make(chan error, 8)
	cl, err := engine.Dial(ctx, addr, handler.NewRouter(),
		engine.WithReconnect(10*time.Millisecond, 100*time.Millisecond, func(handler.Conn) { reconnected <- struct{}{} }),
		engine.WithMaxHeld(1000),
		engine.WithDialTimeout(time.Second),
		engine.WithOnDisconnect(func(_ handler.Conn, r error) { disconnected <- r }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	wait(cl.Ready(), "the first connection")

	// The pending call fails with ErrClosed; the client reconnects.
	if err := cl.Call(ctx, 7, map[string]int{}, nil); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("call pending when the connection dropped: %v", err)
	}
	// Take this drop's disconnect signal now: left in the channel, it would
	// pass for the next one, and the frames below could go to a connection
	// the client has not yet seen close.
	select {
	case <-disconnected:
	case <-ctx.Done():
		t.Fatal("timed out waiting for the first disconnect")
	}
	wait(reconnected, "the reconnection to the same server")
	if err := cl.Send(2, map[string]int{"seq": 0}); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, 1); got[0] != `{"seq":0}` {
		t.Fatalf("after reconnecting: %q", got)
	}

	// The server goes away; frames sent meanwhile are held up to 1000
	// bytes of JSON.
	sctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if err := first.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-disconnected:
	case <-ctx.Done():
		t.Fatal("timed out waiting for the disconnect")
	}
	pad := strings.Repeat("p", 80)
	held := 0
	for seq := 1; ; seq++ {
		err := cl.Send(2, map[string]any{"seq": seq, "pad": pad})
		if err != nil {
			if !errors.Is(err, engine.ErrOutboundFull) {
				t.Fatalf("send past the hold limit: %v", err)
			}
			break
		}
		if held++; held > 1000/len(pad) {
			t.Fatalf("held %d frames of over %d bytes within 1000 bytes", held, len(pad))
		}
	}
	if held == 0 {
		t.Fatal("nothing was held")
	}

	second := startServerAt(ctx, t, addr, sr)
	wait(reconnected, "the reconnection to the new server")
	got := rec.wait(t, 1+held)
	for i, f := range got[1:] {
		if want := fmt.Sprintf(`{"pad":%q,"seq":%d}`, pad, i+1); f != want {
			t.Fatalf("held frame %d: got %s, want %s", i, f, want)
		}
	}
	if err := cl.Send(2, map[string]int{"seq": held + 1}); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, 2+held); got[1+held] != fmt.Sprintf(`{"seq":%d}`, held+1) {
		t.Fatalf("after the held frames: %q", got[1+held])
	}
	if second.Stats().Conns != 1 {
		t.Fatalf("%d connections on the new server", second.Stats().Conns)
	}
}

// TestReconnectOffAndClose: without WithReconnect a client whose server
// goes away is done and Send fails with ErrClosed; with it, Close stops the
// reconnection attempts (TestMain's leak check sees no goroutine left).
func TestReconnectOffAndClose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	srv, err := engine.NewServer(echoRouter())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	plain, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	retrying, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(),
		engine.WithReconnect(5*time.Millisecond, 20*time.Millisecond, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*engine.Client{plain, retrying} {
		select {
		case <-cl.Ready():
		case <-ctx.Done():
			t.Fatal("timed out connecting")
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	select {
	case <-plain.Done():
	case <-ctx.Done():
		t.Fatal("the client without reconnection is not done")
	}
	if err := plain.Send(1, map[string]int{}); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Send after the server went away: %v", err)
	}
	if err := plain.Call(ctx, 1, map[string]int{}, nil); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Call after the server went away: %v", err)
	}

	// The other client keeps trying (every 5-20ms) until Close.
	select {
	case <-retrying.Done():
		t.Fatalf("the reconnecting client gave up: %v", retrying.Err())
	case <-time.After(100 * time.Millisecond): // several failed attempts
	}
	if err := retrying.Send(1, map[string]int{}); err != nil {
		t.Fatalf("Send while reconnecting is held, got %v", err)
	}
	retrying.Close()
	select {
	case <-retrying.Done():
	case <-ctx.Done():
		t.Fatal("Close did not stop the reconnecting client")
	}
	if !errors.Is(retrying.Err(), engine.ErrLocalClose) {
		t.Fatalf("closed with %v, want ErrLocalClose", retrying.Err())
	}
	if err := retrying.Send(1, map[string]int{}); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
}

// countingHandler counts the records at or above warning level.
type countingHandler struct {
	warns *atomic.Int64
}

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.warns.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestNoLogAmplification: peers cannot make the server log once per frame
// or per connection. Ten of twenty connections ask for a size too small for
// 200 broadcasts: 2,000 frames are not sent to them, counted in
// Stats().Unfit, in a few log lines; a broadcast too large for the server's
// own size is an error to the caller; forty refused connections log a few
// lines, not forty.
func TestNoLogAmplification(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	var warns atomic.Int64
	ev := newConnEvents()
	srv := startServer(t, handler.NewRouter(), append(ev.options(), engine.WithMessageSize(1024),
		engine.WithMaxConns(20), engine.WithLogger(slog.New(countingHandler{&warns})))...)
	addr := srv.Addr().String()
	var small []*rawPeer
	for i := range 20 {
		p := dialRaw(t, addr)
		p.greet(1024)
		ev.next(ctx, t)
		if i%2 == 0 {
			p.write(`-2{"message_size":128}`) // smaller than the broadcasts
			if op, _ := p.read(); op != codec.OpMessageSize {
				t.Fatalf("size answer %d", op)
			}
			p.size = 128
			small = append(small, p)
		}
	}
	text := strings.Repeat("x", 500)
	for i := range 200 {
		if err := srv.SendAll(1, map[string]any{"i": i, "text": text}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.SendAll(1, map[string]string{"text": strings.Repeat("y", 2000)}); !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Errorf("a broadcast past the server's size: %v, want ErrFrameTooLarge", err)
	}
	// A frame the small peers can take arrives after the unfit ones: they
	// were skipped, not queued.
	if err := srv.SendAll(2, map[string]int{"ok": 1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range small {
		if op, obj := p.read(); op != 2 || string(obj) != `{"ok":1}` {
			t.Fatalf("small peer got %d %s", op, obj)
		}
	}
	if u := srv.Stats().Unfit; u != 2000 {
		t.Errorf("Stats().Unfit = %d, want 2000", u)
	}
	for range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, c) // the ServerFull failure, then EOF
		c.Close()
	}
	// Each warning is logged at most once a second: a run this short logs a
	// handful, where before it logged 2,040 lines.
	if n := warns.Load(); n > 10 {
		t.Errorf("%d warnings logged", n)
	}
	if warns.Load() == 0 {
		t.Error("no warning at all: the test proves nothing")
	}
}
