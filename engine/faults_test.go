package engine_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Tests of network faults between a client and a server (docs/OPERATIONS.md, Attacks and faults):
// latency and bandwidth limits, a reset, a half-close, a peer that stops in
// the middle of a frame, and a link that black-holes traffic.
//
// The faults come from faultProxy, a TCP proxy of our own between the two.
// Shopify's toxiproxy runs in-process too, but as a test dependency of this
// module it brings 16 modules into go.mod (prometheus, protobuf, gorilla/mux,
// zerolog, ...; v2.5.0), and the faults needed here fit in 250 lines whose
// every goroutine the leak check can see stop.

// faultProxy forwards connections from its listener to target. Every link
// can be slowed (latency, bandwidth, set before the link opens) and, once
// open, reset, half-closed or black-holed.
type faultProxy struct {
	address string // where it listens, kept across stop and listen
	target  string
	shape   linkShape
	refuse  atomic.Bool  // reset new connections at once
	resets  atomic.Int64 // connections reset by refuse
	resetCh chan struct{}

	mu     sync.Mutex // guards ln, links
	ln     net.Listener
	links  []*proxyLink
	linked chan *proxyLink
	wg     sync.WaitGroup
}

// linkShape slows every link of a proxy, in each direction.
type linkShape struct {
	latency time.Duration // added to every byte
	rate    int           // bytes per second, 0 for no limit
}

// proxyLink is one proxied connection: up carries client to server, down
// server to client.
type proxyLink struct {
	client, server *net.TCPConn
	up, down       *proxyPipe
}

// proxyPipe is one direction of a link.
type proxyPipe struct {
	src, dst *net.TCPConn
	latency  time.Duration
	rate     int
	chunks   chan proxyChunk
	hole     atomic.Bool  // what is read from now on is dropped
	finAt    atomic.Int64 // once this many bytes are forwarded, send FIN and drop the rest; -1 for never
	moved    atomic.Int64 // bytes forwarded
}

type proxyChunk struct {
	b   []byte
	due time.Time
}

// newFaultProxy starts a proxy to target, stopped when the test ends.
func newFaultProxy(t *testing.T, target string, shape linkShape) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{address: ln.Addr().String(), ln: ln, target: target, shape: shape,
		linked: make(chan *proxyLink, 64), resetCh: make(chan struct{}, 1)}
	p.wg.Add(1)
	go p.accept(ln)
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.address }

// stop closes the listener: new connections are refused by the kernel
// (ECONNREFUSED), as when nothing listens; the links stay.
func (p *faultProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.ln.Close()
}

// listen listens again on the same address. While the listener was
// closed, a connection of another test may have taken the port as its own
// end: listen then tries again until that connection is gone.
func (p *faultProxy) listen(ctx context.Context, t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.address)
	for errors.Is(err, syscall.EADDRINUSE) {
		select {
		case <-ctx.Done():
			t.Fatalf("listen again on %s: %v", p.address, err)
		case <-time.After(10 * time.Millisecond):
		}
		ln, err = net.Listen("tcp", p.address)
	}
	if err != nil {
		t.Fatalf("listen again on %s: %v", p.address, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
}

func (p *faultProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		client := nc.(*net.TCPConn)
		if p.refuse.Load() {
			reset(client)
			p.resets.Add(1)
			select {
			case p.resetCh <- struct{}{}:
			default:
			}
			continue
		}
		sc, err := net.DialTimeout("tcp", p.target, testTimeout)
		if err != nil {
			reset(client)
			continue
		}
		server := sc.(*net.TCPConn)
		l := &proxyLink{client: client, server: server}
		l.up = p.pipe(client, server)
		l.down = p.pipe(server, client)
		p.mu.Lock()
		p.links = append(p.links, l)
		p.mu.Unlock()
		select {
		case p.linked <- l:
		default:
		}
	}
}

// pipe starts the two goroutines of one direction: one reads src into
// chunks, stamped with when they are due, the other writes them to dst at
// the rate. The bounded channel passes backpressure on to src.
func (p *faultProxy) pipe(src, dst *net.TCPConn) *proxyPipe {
	pp := &proxyPipe{src: src, dst: dst, latency: p.shape.latency, rate: p.shape.rate, chunks: make(chan proxyChunk, 16)}
	pp.finAt.Store(-1)
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		defer close(pp.chunks)
		for {
			b := make([]byte, 16<<10)
			n, err := src.Read(b)
			if n > 0 && !pp.hole.Load() {
				pp.chunks <- proxyChunk{b: b[:n], due: time.Now().Add(pp.latency)}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		var sent int64
		start := time.Now()
		for c := range pp.chunks {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d) // the latency itself, not a synchronisation
			}
			for b := c.b; len(b) > 0; {
				n := len(b)
				if pp.rate > 0 {
					n = min(n, max(pp.rate/100, 1)) // 10 ms of the rate at a time
					if d := time.Until(start.Add(time.Duration(sent) * time.Second / time.Duration(pp.rate))); d > 0 {
						time.Sleep(d) // the bandwidth limit
					}
				}
				if fin := pp.finAt.Load(); fin >= 0 {
					n = int(min(int64(n), fin-pp.moved.Load()))
				}
				if n > 0 && !pp.hole.Load() {
					if _, err := dst.Write(b[:n]); err != nil {
						break
					}
					pp.moved.Add(int64(n))
					sent += int64(n)
				}
				if fin := pp.finAt.Load(); fin >= 0 && pp.moved.Load() >= fin {
					pp.hole.Store(true)
					_ = dst.CloseWrite()
				}
				if pp.hole.Load() {
					break
				}
				b = b[n:]
			}
		}
		// src closed: pass the FIN on, as TCP would, unless the pipe is a
		// black hole, which swallows it too.
		if !pp.hole.Load() {
			_ = dst.CloseWrite()
		}
	}()
	return pp
}

// next returns the next link the proxy opens.
func (p *faultProxy) next(ctx context.Context, t *testing.T) *proxyLink {
	t.Helper()
	select {
	case l := <-p.linked:
		return l
	case <-ctx.Done():
		t.Fatal("timed out waiting for a proxied connection")
		return nil
	}
}

func (p *faultProxy) close() {
	p.mu.Lock()
	_ = p.ln.Close()
	for _, l := range p.links {
		_ = l.client.Close()
		_ = l.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// reset closes c with a TCP reset.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// reset resets both sides of the link.
func (l *proxyLink) reset() {
	reset(l.client)
	reset(l.server)
}

// blackHole drops whatever either side sends from now on; both stay open.
func (l *proxyLink) blackHole() {
	l.up.hole.Store(true)
	l.down.hole.Store(true)
}

// finAfter makes the pipe forward n more bytes, then send FIN to its
// destination and drop what follows: the sender half-closed.
func (pp *proxyPipe) finAfter(n int64) { pp.finAt.Store(pp.moved.Load() + n) }

// halfClose sends FIN to the pipe's destination now and drops what follows.
func (pp *proxyPipe) halfClose() {
	pp.hole.Store(true)
	_ = pp.dst.CloseWrite()
}

// faultRouter answers calls on opcode 1 with their data, records the
// one-way frames of opcode 2 and counts the calls it received.
func faultRouter(rec *recorder, calls *atomic.Int64, seen chan<- struct{}) *handler.Router {
	r := handler.NewRouter()
	r.OnCall(1, func(_ handler.Conn, data []byte) (any, error) {
		if calls != nil {
			calls.Add(1)
		}
		if seen != nil {
			select {
			case seen <- struct{}{}:
			default:
			}
		}
		return rawJSON(data), nil
	})
	r.On(2, func(_ handler.Conn, data []byte) error {
		if rec != nil {
			rec.add(string(data))
		}
		return nil
	})
	return r
}

// waitFor waits for ch or fails the test when ctx ends.
func waitFor[T any](ctx context.Context, t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// checkSeqs checks that frames are {"seq":0}, {"seq":1}, ... in order.
func checkSeqs(t *testing.T, who string, frames []string, n int) {
	t.Helper()
	if len(frames) != n {
		t.Fatalf("%s: %d frames, want %d", who, len(frames), n)
	}
	for i, f := range frames {
		if want := fmt.Sprintf(`{"seq":%d}`, i); f != want {
			t.Fatalf("%s: frame %d is %s, want %s", who, i, f, want)
		}
	}
}

// TestFaultLatencyAndBandwidth puts 20 ms of latency and a 512 KiB/s limit
// in each direction: 100 calls in flight at once all get their own replies,
// 200 one-way frames each way arrive complete and in order, every call
// takes at least the round trip, and the whole takes at least what the
// bytes need at that rate (so the limit really applied).
func TestFaultLatencyAndBandwidth(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const (
		latency = 20 * time.Millisecond
		rate    = 512 << 10
		calls   = 100
		sends   = 200
	)
	atServer := newRecorder()
	ids := make(chan uint64, 1)
	srv := startServer(t, faultRouter(atServer, nil, nil), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	p := newFaultProxy(t, srv.Addr().String(), linkShape{latency: latency, rate: rate})

	atClient := newRecorder()
	cr := handler.NewRouter()
	cr.On(3, func(_ handler.Conn, data []byte) error { atClient.add(string(data)); return nil })
	start := time.Now()
	cl, err := engine.Dial(ctx, p.addr(), cr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	id := waitFor(ctx, t, ids, "the connection")
	waitFor(ctx, t, cl.Ready(), "the -2 frame")

	var wg sync.WaitGroup
	errs := make(chan error, calls)
	var fastest atomic.Int64
	fastest.Store(int64(time.Hour))
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			var resp struct{ N int }
			if err := cl.Call(ctx, 1, map[string]int{"n": i}, &resp); err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
				return
			}
			if resp.N != i {
				errs <- fmt.Errorf("call %d got the reply of %d", i, resp.N)
			}
			d := int64(time.Since(began))
			for cur := fastest.Load(); d < cur && !fastest.CompareAndSwap(cur, d); cur = fastest.Load() {
			}
		}()
	}
	for i := range sends {
		if err := cl.Send(2, map[string]int{"seq": i}); err != nil {
			t.Fatal(err)
		}
		if err := srv.Send(id, 3, map[string]int{"seq": i}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkSeqs(t, "at the server", atServer.wait(t, sends), sends)
	checkSeqs(t, "at the client", atClient.wait(t, sends), sends)
	elapsed := time.Since(start)
	// Upstream: the client's frames, each 1024 bytes: calls and sends.
	minimum := time.Duration(calls+sends) * 1024 * time.Second / rate
	t.Logf("%d calls and %d frames each way through %v and %d KiB/s: %v (the bytes alone need %v); fastest call %v",
		calls, sends, latency, rate>>10, elapsed, minimum, time.Duration(fastest.Load()))
	if elapsed < minimum*9/10 {
		t.Fatalf("done in %v; at %d KiB/s the bytes need %v", elapsed, rate>>10, minimum)
	}
	if f := time.Duration(fastest.Load()); f < 2*latency {
		t.Fatalf("a call took %v, less than the round trip %v", f, 2*latency)
	}
}

// TestFaultResetMidStream: the link is reset (RST both ways) while 20
// calls wait for replies that the proxy holds back. The calls fail with
// ErrClosed, the client's disconnect reason is the reset; while nothing
// listens (the proxy has closed its listener: the client's attempts are
// refused), 50 frames sent are held; once the proxy listens again, the
// client reconnects, the reconnect callback runs, the held frames arrive
// in order, and calls work again. (A proxy that accepts and resets at once
// instead: TestFaultReconnectAfterResets.)
func TestFaultResetMidStream(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const inFlight, held = 20, 50
	atServer := newRecorder()
	var received atomic.Int64
	seen := make(chan struct{}, 1)
	srv := startServer(t, faultRouter(atServer, &received, seen))
	p := newFaultProxy(t, srv.Addr().String(), linkShape{})

	reasons := make(chan error, 16)
	reconnected := make(chan struct{}, 16)
	cl, err := engine.Dial(ctx, p.addr(), handler.NewRouter(),
		engine.WithReconnect(5*time.Millisecond, 40*time.Millisecond, func(handler.Conn) { reconnected <- struct{}{} }),
		engine.WithOnDisconnect(func(_ handler.Conn, r error) { reasons <- r }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	link := p.next(ctx, t)
	waitFor(ctx, t, cl.Ready(), "the -2 frame")

	// The replies are dropped: the calls stay in flight.
	link.down.hole.Store(true)
	results := make(chan error, inFlight)
	for i := range inFlight {
		go func() { results <- cl.Call(ctx, 1, map[string]int{"n": i}, nil) }()
	}
	for received.Load() < inFlight {
		waitFor(ctx, t, seen, "the server to see the calls")
	}
	p.stop()
	link.reset()
	for range inFlight {
		if err := waitFor(ctx, t, results, "the calls to end"); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("call in flight across the reset: %v, want ErrClosed", err)
		}
	}
	if r := waitFor(ctx, t, reasons, "the disconnect"); !errors.Is(r, syscall.ECONNRESET) {
		t.Fatalf("disconnect reason %v, want ECONNRESET", r)
	}

	for i := range held {
		if err := cl.Send(2, map[string]int{"seq": i}); err != nil {
			t.Fatalf("send %d while reconnecting: %v", i, err)
		}
	}
	if n := engine.HeldFrames(cl); n != held {
		t.Fatalf("%d frames held while nothing listens, want %d", n, held)
	}
	p.listen(ctx, t)
	waitFor(ctx, t, reconnected, "the reconnection")
	checkSeqs(t, "held frames at the server", atServer.wait(t, held), held)
	var resp struct{ N int }
	if err := cl.Call(ctx, 1, map[string]int{"n": 7}, &resp); err != nil || resp.N != 7 {
		t.Fatalf("call after reconnecting: %+v %v", resp, err)
	}
}

// TestFaultReconnectAfterResets: after its connection drops, a client
// with WithReconnect (1 ms to 2 ms) meets a proxy that accepts each new
// connection and resets it at once, 100 times (a load balancer with no
// backend); then the proxy forwards again, and the client must reconnect
// and deliver the frame it held since the drop (OPERATIONS.md, Clients:
// reconnection: it keeps trying until it reconnects or is closed). Before
// 946378d the client stopped dialing after one or two such resets.
func TestFaultReconnectAfterResets(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const resets = 100
	atServer := newRecorder()
	srv := startServer(t, faultRouter(atServer, nil, nil))
	p := newFaultProxy(t, srv.Addr().String(), linkShape{})
	reconnected := make(chan struct{}, 1)
	dropped := make(chan struct{}, 1)
	cl, err := engine.Dial(ctx, p.addr(), handler.NewRouter(),
		engine.WithReconnect(time.Millisecond, 2*time.Millisecond, func(handler.Conn) {
			select {
			case reconnected <- struct{}{}:
			default:
			}
		}),
		engine.WithOnDisconnect(func(handler.Conn, error) {
			select {
			case dropped <- struct{}{}:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	link := p.next(ctx, t)
	waitFor(ctx, t, cl.Ready(), "the -2 frame")

	p.refuse.Store(true)
	link.reset()
	// Once the client has seen the drop: a frame sent before that goes to
	// the old connection and is lost with it, as OPERATIONS.md says.
	waitFor(ctx, t, dropped, "the disconnect")
	if err := cl.Send(2, map[string]int{"seq": 0}); err != nil {
		t.Fatalf("send while reconnecting: %v", err)
	}
	for p.resets.Load() < resets {
		select {
		case <-p.resetCh:
		case <-cl.Done():
			t.Fatalf("the client gave up: %v", cl.Err())
		case <-ctx.Done():
			t.Fatalf("the client stopped dialing after %d resets (HeldFrames %d, Err %v)",
				p.resets.Load(), engine.HeldFrames(cl), cl.Err())
		}
	}
	p.refuse.Store(false)
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatalf("no reconnection once the proxy forwards again, after %d resets (HeldFrames %d, Err %v)",
			p.resets.Load(), engine.HeldFrames(cl), cl.Err())
	}
	checkSeqs(t, "the held frame", atServer.wait(t, 1), 1)
}
