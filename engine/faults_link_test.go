// Tests of links that fail partway: a half-closed connection, a peer that
// stops mid-frame, and a black hole.

package engine_test

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

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
