package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
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

// TestFaultHalfClose: a half-close is a close. When the client's side
// half-closes after 10 frames, the server handles those 10, in order, and
// then closes with io.EOF; the client sees the close (io.EOF) and a call
// made then fails with ErrClosed. When the server's side half-closes, the
// client closes with io.EOF and the server sees it close.
func TestFaultHalfClose(t *testing.T) {
	t.Parallel()

	t.Run("client to server", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		atServer := newRecorder()
		ev := newConnEvents()
		srv := startServer(t, faultRouter(atServer, nil, nil), ev.options()...)
		p := newFaultProxy(t, srv.Addr().String(), linkShape{})
		cl, err := engine.Dial(ctx, p.addr(), handler.NewRouter())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		link := p.next(ctx, t)
		id := ev.next(ctx, t).ID()
		waitFor(ctx, t, cl.Ready(), "the -2 frame")

		link.up.finAfter(10 * 1024)
		for i := range 20 {
			if err := cl.Send(2, map[string]int{"seq": i}); err != nil && !errors.Is(err, engine.ErrClosed) {
				t.Fatal(err)
			}
		}
		if r := ev.reasonFor(ctx, t, id); !errors.Is(r, io.EOF) {
			t.Fatalf("server: disconnect reason %v, want io.EOF", r)
		}
		checkSeqs(t, "before the FIN", atServer.wait(t, 10), 10)
		waitFor(ctx, t, cl.Done(), "the client to close")
		if !errors.Is(cl.Err(), io.EOF) {
			t.Fatalf("client closed with %v, want io.EOF", cl.Err())
		}
		if err := cl.Call(ctx, 1, map[string]int{}, nil); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("call after the close: %v", err)
		}
		if n := srv.Stats().Conns; n != 0 {
			t.Fatalf("%d connections left on the server", n)
		}
	})

	t.Run("server to client", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		ev := newConnEvents()
		srv := startServer(t, faultRouter(nil, nil, nil), ev.options()...)
		p := newFaultProxy(t, srv.Addr().String(), linkShape{})
		cl, err := engine.Dial(ctx, p.addr(), handler.NewRouter())
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		link := p.next(ctx, t)
		id := ev.next(ctx, t).ID()
		waitFor(ctx, t, cl.Ready(), "the -2 frame")
		if err := cl.Call(ctx, 1, map[string]int{}, nil); err != nil {
			t.Fatalf("call before the half-close: %v", err)
		}

		link.down.halfClose()
		waitFor(ctx, t, cl.Done(), "the client to close")
		if !errors.Is(cl.Err(), io.EOF) {
			t.Fatalf("client closed with %v, want io.EOF", cl.Err())
		}
		if r := ev.reasonFor(ctx, t, id); !errors.Is(r, io.EOF) {
			t.Fatalf("server: disconnect reason %v, want io.EOF", r)
		}
	})
}

// TestFaultStopMidFrame: peers that stop in the middle of a frame. One
// sends 60 of its frame's 128 bytes and waits while four others complete
// 50 echoes each; then it sends the rest and gets its echo: the partial
// frame was kept, in step. On a server with a 300 ms idle timeout, a peer
// that stops mid-frame for good is closed with ErrIdle and one that closes
// mid-frame with io.EOF; the partial frame is never handled (no echo comes
// before the close), and the healthy peers' echoes go on meanwhile.
func TestFaultStopMidFrame(t *testing.T) {
	t.Parallel()
	const size = 128
	frame := func(s string) []byte {
		f, err := codec.AppendRaw(nil, size, 0, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// echoes runs n round trips on each of the peers at once.
	echoes := func(t *testing.T, peers []*rawPeer, n int, stop <-chan struct{}) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(peers))
		for k, p := range peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, size)
				for i := 0; n < 0 || i < n; i++ {
					if stop != nil {
						select {
						case <-stop:
							return
						default:
						}
					}
					want := fmt.Sprintf(`{"peer":%d,"i":%d}`, k, i)
					if _, err := p.conn.Write(frame(want)); err != nil {
						errs <- err
						return
					}
					if _, err := io.ReadFull(p.r, buf); err != nil {
						errs <- err
						return
					}
					if op, obj, err := codec.Decode(buf); err != nil || op != 0 || string(obj) != want {
						errs <- fmt.Errorf("peer %d echo %d: %d %s %v", k, i, op, obj, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	healthy := func(t *testing.T, addr string) []*rawPeer {
		peers := make([]*rawPeer, 4)
		for i := range peers {
			peers[i] = dialRaw(t, addr)
			peers[i].greet(size)
		}
		return peers
	}

	t.Run("resumed", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, echoRouter(), engine.WithMessageSize(size))
		addr := srv.Addr().String()
		stalled := dialRaw(t, addr)
		stalled.greet(size)
		f := frame(`{"stalled":"then resumed"}`)
		if _, err := stalled.conn.Write(f[:60]); err != nil {
			t.Fatal(err)
		}
		echoes(t, healthy(t, addr), 50, nil)
		if _, err := stalled.conn.Write(f[60:]); err != nil {
			t.Fatal(err)
		}
		if op, obj := stalled.read(); op != 0 || string(obj) != `{"stalled":"then resumed"}` {
			t.Fatalf("the resumed frame: %d %s", op, obj)
		}
		stalled.write(`0{"next":1}`)
		if op, obj := stalled.read(); op != 0 || string(obj) != `{"next":1}` {
			t.Fatalf("after the resumed frame: %d %s", op, obj)
		}
	})

	t.Run("abandoned", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t)
		// Long enough that a loaded machine does not starve a healthy
		// peer's echoes past it (300 ms did).
		const idle = time.Second
		ev := newConnEvents()
		srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(size),
			engine.WithIdleTimeout(idle))...)
		addr := srv.Addr().String()
		peers := healthy(t, addr)
		for range peers {
			ev.next(ctx, t)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); echoes(t, peers, -1, stop) }()

		silent := dialRaw(t, addr)
		silent.greet(size)
		silentID := ev.idOf(ctx, t, silent)
		gone := dialRaw(t, addr)
		gone.greet(size)
		goneID := ev.idOf(ctx, t, gone)
		f := frame(`{"never":"complete"}`)
		if _, err := silent.conn.Write(f[:60]); err != nil {
			t.Fatal(err)
		}
		if _, err := gone.conn.Write(f[:60]); err != nil {
			t.Fatal(err)
		}
		_ = gone.conn.Close()
		if r := ev.reasonFor(ctx, t, goneID); !errors.Is(r, io.EOF) {
			t.Fatalf("closed mid-frame: reason %v, want io.EOF", r)
		}
		if r := ev.reasonFor(ctx, t, silentID); !errors.Is(r, engine.ErrIdle) {
			t.Fatalf("silent mid-frame: reason %v, want ErrIdle", r)
		}
		close(stop)
		<-done
		if n := srv.Stats().Conns; n != len(peers) {
			t.Fatalf("%d connections open, want the %d healthy ones", n, len(peers))
		}
		// The partial frame was never handled: no echo came before the close.
		silent.expectEOF()
	})
}

// TestFaultBlackHole: the proxy black-holes both directions of a live
// link (it reads and drops everything, and keeps both sides open). The
// client's heartbeat (100 ms, 1 s) closes it with ErrIdle, no sooner
// than the timeout less one interval; a call in flight (the server has it
// and holds its reply) fails with ErrClosed wrapping ErrIdle; the server's
// idle timeout (2 s) closes its side with ErrIdle; the client then reconnects through the proxy and
// calls again.
func TestFaultBlackHole(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	// Timeouts that a loaded machine's scheduling delays stay well within:
	// with 300 ms, a healthy connection was closed before the black hole.
	const interval, timeout, idle = 100 * time.Millisecond, time.Second, 2 * time.Second
	ev := newConnEvents()
	// The first call is held until the link is black-holed, so that it is
	// in flight when the heartbeat closes the client, however slow the
	// machine; later calls are echoed. The handlers run on a worker.
	r := faultRouter(nil, nil, nil)
	held, release := make(chan struct{}), make(chan struct{})
	unhold := sync.OnceFunc(func() { close(release) })
	defer unhold()
	var first atomic.Bool
	r.OnCall(1, func(_ handler.Conn, data []byte) (any, error) {
		if first.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
		return rawJSON(data), nil
	})
	srv := startServer(t, r, append(ev.options(), engine.WithIdleTimeout(idle), engine.WithWorkerPool(2, 16))...)
	p := newFaultProxy(t, srv.Addr().String(), linkShape{})

	var pongs atomic.Int64
	pong := make(chan struct{}, 1)
	reasons := make(chan closeEvent, 16)
	reconnected := make(chan struct{}, 16)
	cl, err := engine.Dial(ctx, p.addr(), handler.NewRouter(),
		engine.WithHeartbeat(interval, timeout),
		engine.WithReconnect(5*time.Millisecond, 40*time.Millisecond, func(handler.Conn) { reconnected <- struct{}{} }),
		engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
			if op == codec.OpPong {
				pongs.Add(1)
				select {
				case pong <- struct{}{}:
				default:
				}
			}
		}),
		engine.WithOnDisconnect(func(_ handler.Conn, r error) { reasons <- closeEvent{reason: r, at: time.Now()} }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	link := p.next(ctx, t)
	serverID := ev.next(ctx, t).ID()
	for pongs.Load() < 3 {
		waitFor(ctx, t, pong, "pongs through the proxy")
	}

	call := make(chan error, 1)
	go func() { call <- cl.Call(ctx, 1, map[string]int{}, nil) }()
	waitFor(ctx, t, held, "the server to have the call") // it is in flight
	link.blackHole()
	holed := time.Now()

	e := waitFor(ctx, t, reasons, "the heartbeat to close the client")
	after := e.at.Sub(holed)
	if !errors.Is(e.reason, engine.ErrIdle) {
		t.Fatalf("client closed with %v, want ErrIdle", e.reason)
	}
	if err := waitFor(ctx, t, call, "the call"); !errors.Is(err, engine.ErrClosed) || !errors.Is(err, engine.ErrIdle) {
		t.Fatalf("call in flight: %v, want ErrClosed wrapping ErrIdle", err)
	}
	unhold() // the server's disconnect callback runs after the handler, on its worker
	se := ev.eventFor(ctx, t, serverID)
	serverAfter := se.at.Sub(holed)
	if !errors.Is(se.reason, engine.ErrIdle) {
		t.Fatalf("server closed with %v, want ErrIdle", se.reason)
	}
	t.Logf("black hole detected by the client after %v (timeout %v, interval %v), by the server after %v (idle %v)",
		after, timeout, interval, serverAfter, idle)
	if after < timeout-interval || serverAfter < idle-interval {
		t.Fatalf("closed too soon: client %v (timeout %v), server %v (idle %v)", after, timeout, serverAfter, idle)
	}
	// The ends are events; the bounds below only catch a detector that
	// does not work, with room for a loaded machine (10x).
	if after > 10*timeout || serverAfter > 10*idle {
		t.Fatalf("detected late: client %v (timeout %v), server %v (idle %v)", after, timeout, serverAfter, idle)
	}

	// A heartbeat may also close a healthy connection on a machine too
	// loaded to answer within the timeout: the client then
	// reconnects again, and the call is made on the next connection.
	for {
		waitFor(ctx, t, reconnected, "the reconnection")
		err := cl.Call(ctx, 1, map[string]int{}, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("call after reconnecting: %v", err)
		}
		t.Logf("call after reconnecting: %v; again on the next connection", err)
	}
}
