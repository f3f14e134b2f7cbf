// Tests of the outbound credit calls wait for: bursts of calls, calls waiting for
// room, a slow peer, and frames held while a client waits.

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// sumCaller makes one call of opSum, on a client or through a server.
type sumCaller func(ctx context.Context, req sumReq, resp *sumResp) error

// clientSum calls opSum with cl.
func clientSum(cl *engine.Client) sumCaller {
	return func(ctx context.Context, req sumReq, resp *sumResp) error {
		return cl.Call(ctx, opSum, req, resp)
	}
}

// callBurst makes n calls of opSum with call at once, each from its own
// goroutine released together, and returns what each returned: nil only
// for a call answered with the right sum.
func callBurst(ctx context.Context, call sumCaller, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var got sumResp
			err := call(ctx, sumReq{A: i, B: 2 * i}, &got)
			if err == nil && got.Sum != 3*i {
				err = fmt.Errorf("call %d: sum %d", i, got.Sum)
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// checkBurst fails the test unless every call of a burst succeeded.
func checkBurst(t *testing.T, errs []error) {
	t.Helper()
	bad := 0
	for i, err := range errs {
		if err != nil {
			if bad++; bad <= 5 {
				t.Errorf("call %d: %v", i, err)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d calls failed", bad, len(errs))
	}
}

// TestCallManyInFlight makes 5000 calls at once on one connection, from
// the client and then from the server, with the default 1024-byte frames,
// and checks that each gets its own reply. 5000 requests are 5 MiB, past
// the default outbound cap (4 MiB): the calls past it wait for room. It
// starts 5000 goroutines, so it does not run in parallel with other tests
// (the race detector caps live goroutines).
func TestCallManyInFlight(t *testing.T) {
	srv, cl, id := callPair(t, callModes[0], sumRouter(), sumRouter())
	// A deadline per burst: each takes 10 to 20 s under the race detector
	// on a loaded machine.
	checkBurst(t, callBurst(testContext(t), clientSum(cl), 5000))
	checkPending(t, "client", cl)
	checkBurst(t, callBurst(testContext(t), func(ctx context.Context, req sumReq, resp *sumResp) error {
		return srv.Call(ctx, id, opSum, req, resp)
	}, 5000))
	c, ok := srv.Conn(id)
	if !ok {
		t.Fatal("connection gone")
	}
	checkPending(t, "server conn", c)
}

// TestCallBurstWaitsForRoom releases 4000 calls at once on one connection
// with 1024-byte frames and a client outbound cap of 64 KiB (64 frames):
// most calls wait for the loop to take the queue. Before, such a burst
// tripped the slow-consumer policy and closed the connection, failing every
// call. Not parallel: 4000 goroutines.
func TestCallBurstWaitsForRoom(t *testing.T) {
	srv := startServer(t, sumRouter())
	cl := callDial(t, srv.Addr().String(), handler.NewRouter(), engine.WithMaxOutbound(64<<10, engine.SlowClose))
	checkBurst(t, callBurst(testContext(t), clientSum(cl), 4000))
	select {
	case <-cl.Done():
		t.Fatalf("the burst closed the connection: %v", cl.Err())
	default:
	}
	checkPending(t, "client", cl)
}

// dialHeld dials srv (which answers opSum) with an outbound cap of 64 KiB,
// 64 frames of 1024 bytes, then holds the client's event loop in a
// callback until release is called or the test times out: the queue fills
// and nothing drains it.
func dialHeld(t *testing.T, srv *engine.Server) (cl *engine.Client, release func()) {
	t.Helper()
	const opHold = codec.Opcode(9)
	held, free := make(chan struct{}), make(chan struct{})
	r := handler.NewRouter()
	r.On(opHold, func(handler.Conn, []byte) error {
		close(held)
		select { // the event loop is stuck here
		case <-free:
		case <-time.After(testTimeout):
		}
		return nil
	})
	cl = callDial(t, srv.Addr().String(), r, engine.WithMaxOutbound(64<<10, engine.SlowClose))
	if err := cl.Call(testContext(t), opSum, sumReq{A: 1, B: 2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.SendAll(opHold, struct{}{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(testTimeout):
		t.Fatal("the hold callback did not run")
	}
	var once sync.Once
	release = func() { once.Do(func() { close(free) }) }
	t.Cleanup(release)
	return cl, release
}

// TestCallWaitingForRoomEnds blocks the client's event loop in a callback
// while 300 calls are made with a short deadline: the first 64 fill the
// queue (64 KiB of 1024-byte frames) and the rest wait for room. Every call
// must end with its context's error, not hang and not close the connection;
// once the loop is free, calls work again and nothing is left pending.
func TestCallWaitingForRoomEnds(t *testing.T) {
	srv := startServer(t, sumRouter())
	cl, release := dialHeld(t, srv)
	ctx, cancel := context.WithTimeout(testContext(t), 300*time.Millisecond)
	defer cancel()
	errs := callBurst(ctx, clientSum(cl), 300)
	release()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call %d, blocked behind the loop, ended with %v, want its deadline", i, err)
		}
	}
	var got sumResp
	if err := cl.Call(testContext(t), opSum, sumReq{A: 4, B: 5}, &got); err != nil || got.Sum != 9 {
		t.Fatalf("call after the loop was freed: %v %v (client: %v)", got, err, cl.Err())
	}
	checkPending(t, "client", cl)
}

// sumRequest is a -3 frame's object for opSum, as a hand-written peer reads
// it.
type sumRequest struct {
	ID   uint64 `json:"id"`
	Op   int    `json:"op"`
	Data sumReq `json:"data"`
}

// appendSumReply appends the -4 frame of the given size that answers r.
func appendSumReply(t *testing.T, dst []byte, size int, r sumRequest) []byte {
	t.Helper()
	f, err := codec.AppendValidated(dst, size, codec.OpReply,
		[]byte(fmt.Sprintf(`{"id":%d,"data":{"sum":%d}}`, r.ID, r.Data.A+r.Data.B)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitUntil polls cond until it holds, failing the test after testTimeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCallBudgetSlowPeer has a hand-written server stop reading while the
// client makes 1000 calls with 16 KiB frames and a 64 KiB outbound cap: the
// requests fill the kernel's buffers, then a quarter of the credit, and the
// rest of the calls wait. A one-way send made meanwhile must be accepted
// (the calls leave it room). Then the server reads every request without
// answering any: with no inbound traffic to prompt it, only the client's
// timed look at gnet's buffer lets the waiting calls go. Once it has read
// them all, it answers them all. Before, the requests piled up in gnet's
// buffer until the slow-consumer policy closed the connection and failed
// every call. Not parallel: 1000 goroutines.
func TestCallBudgetSlowPeer(t *testing.T) {
	const n, size, opNote = 1000, 16 << 10, codec.Opcode(7)
	addr, accept := rawServer(t, size)
	cl := callDial(t, addr, handler.NewRouter(), engine.WithMaxOutbound(64<<10, engine.SlowClose))
	p := accept()
	select {
	case <-cl.Ready():
	case <-time.After(testTimeout):
		t.Fatal("client not ready")
	}
	var errs []error
	burst := make(chan struct{})
	go func() { defer close(burst); errs = callBurst(testContext(t), clientSum(cl), n) }()

	waitUntil(t, "calls waiting for room", func() bool { w, _ := engine.CallRoom(cl); return w > 0 })
	if err := cl.Send(opNote, map[string]int{"n": 1}); err != nil {
		t.Fatalf("send while calls wait for room: %v", err)
	}
	// 16 MB of requests cannot all fit in the kernel's buffers while the
	// server does not read (a few MB on Linux loopback).
	time.Sleep(300 * time.Millisecond)
	if w, _ := engine.CallRoom(cl); w == 0 {
		t.Fatal("no call waits: the kernel took every request, the test proves nothing")
	}

	var reqs []sumRequest
	notes := 0
	for len(reqs) < n {
		op, obj := p.read()
		switch op {
		case codec.OpRequest:
			var r sumRequest
			if err := codec.Unmarshal(obj, &r); err != nil || r.Op != int(opSum) {
				t.Fatalf("request %s: %v", obj, err)
			}
			reqs = append(reqs, r)
		case opNote:
			notes++
		default:
			t.Fatalf("unexpected frame %d%s", op, obj)
		}
	}
	var out []byte
	for _, r := range reqs {
		out = appendSumReply(t, out, size, r)
	}
	if _, err := p.conn.Write(out); err != nil {
		t.Fatal(err)
	}
	<-burst
	checkBurst(t, errs)
	if notes != 1 {
		t.Errorf("the server read the send made while calls waited %d times, want 1", notes)
	}
	select {
	case <-cl.Done():
		t.Fatalf("the connection closed: %v", cl.Err())
	default:
	}
	checkPending(t, "client", cl)
	waitUntil(t, "the credit to be released", func() bool { _, b := engine.CallRoom(cl); return b == 0 })
	// Nothing waits on credit any more: the loop's recheck timer stops.
	waitUntil(t, "the recheck timer to stop", func() bool { return !engine.RecheckArmed(cl) })
}

// TestClientHeldFramesPaced makes 1000 calls and 200 sends with 8 KiB
// frames before the client knows the message size, so the client holds
// them all, with a 64 KiB outbound cap; then a hand-written server greets
// it and does not read for a while. The held frames must be written as the
// credit allows, not all at once: 9.6 MB cannot fit in the kernel's
// buffers, so some are still held, and the connection is still open. Then
// the server reads everything, in order (the sends in the order made), and
// answers every call. Held frames use at most a quarter of the credit,
// and sends made once the client is ready queue behind them.
// Before, the client wrote every held frame at once, past the cap, and
// closed itself as a slow consumer. Not parallel: 1000 goroutines.
func TestClientHeldFramesPaced(t *testing.T) {
	const calls, sends, late, size, opNote = 1000, 200, 4, 8192, codec.Opcode(7)
	addr, accept := rawServer(t, size)
	cl := callDial(t, addr, handler.NewRouter(), engine.WithMaxOutbound(64<<10, engine.SlowClose))
	var errs []error
	burst := make(chan struct{})
	go func() { defer close(burst); errs = callBurst(testContext(t), clientSum(cl), calls) }()
	for i := range sends {
		if err := cl.Send(opNote, map[string]int{"seq": i}); err != nil {
			t.Fatalf("send %d before the size is known: %v", i, err)
		}
	}
	waitUntil(t, "every frame held", func() bool { return engine.HeldFrames(cl) == calls+sends })
	p := accept()
	select {
	case <-cl.Ready():
	case <-time.After(testTimeout):
		t.Fatal("client not ready")
	}
	// Sent once ready, while held frames still wait: they queue behind
	// them, and the frames ahead must not wait for them (32 KiB queued is
	// past a quarter of the credit already).
	for i := sends; i < sends+late; i++ {
		if err := cl.Send(opNote, map[string]int{"seq": i}); err != nil {
			t.Fatalf("send %d once ready: %v", i, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the server does not read yet
	if n := engine.HeldFrames(cl); n == 0 {
		t.Error("every held frame was written at once")
	}
	// The late sends are charged until written: on top of the quarter.
	if _, b := engine.CallRoom(cl); b > 16<<10+late*size {
		t.Errorf("%d bytes of the credit used, past a quarter of the cap and the late sends: frames that wait must leave sends the rest", b)
	}
	select {
	case <-cl.Done():
		t.Fatalf("the connection closed: %v", cl.Err())
	default:
	}

	var out []byte
	got, next := 0, 0
	for got < calls || next < sends+late {
		op, obj := p.read()
		switch op {
		case codec.OpRequest:
			var r sumRequest
			if err := codec.Unmarshal(obj, &r); err != nil {
				t.Fatalf("request %s: %v", obj, err)
			}
			out = appendSumReply(t, out, size, r)
			got++
		case opNote:
			var m struct{ Seq int }
			if err := codec.Unmarshal(obj, &m); err != nil || m.Seq != next {
				t.Fatalf("send %s, want seq %d (%v)", obj, next, err)
			}
			next++
		default:
			t.Fatalf("unexpected frame %d%s", op, obj)
		}
	}
	if _, err := p.conn.Write(out); err != nil {
		t.Fatal(err)
	}
	<-burst
	checkBurst(t, errs)
	checkPending(t, "client", cl)
	if n := engine.HeldFrames(cl); n != 0 {
		t.Errorf("%d frames still held", n)
	}
	waitUntil(t, "the credit to be released", func() bool { _, b := engine.CallRoom(cl); return b == 0 })
}
