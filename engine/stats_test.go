package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// opFrames returns the counts of op in st.
func opFrames(st engine.Stats, op codec.Opcode) engine.OpcodeFrames {
	for _, o := range st.Opcodes {
		if o.Op == op {
			return o
		}
	}
	return engine.OpcodeFrames{Op: op}
}

type observed struct {
	op  codec.Opcode
	d   time.Duration
	err error
}

// TestStatsCount drives one raw peer through every kind of frame and
// checks each counter the server keeps for it.
func TestStatsCount(t *testing.T) {
	t.Parallel()
	const size = 256
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	r.On(5, func(handler.Conn, []byte) error { return handler.ArgumentMissing("Expected argument 'a' in opcode 5") })
	r.OnCall(1, func(handler.Conn, []byte) (any, error) { return map[string]int{"ok": 1}, nil })
	ids := make(chan uint64, 1)
	gone := make(chan error, 1)
	srv := startServer(t, r, engine.WithMessageSize(size),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }),
		engine.WithOnDisconnect(func(_ handler.Conn, reason error) { gone <- reason }))
	calls := make(chan observed, 4)
	srv.Host().ObserveCalls(func(op codec.Opcode, d time.Duration, err error) { calls <- observed{op, d, err} })

	if st := srv.Stats(); st.Accepted != 0 || st.FramesIn != 0 || len(st.Refused) != 5 || len(st.Disconnects) != 13 ||
		len(st.FailuresSent) != 13 || st.Conns != 0 {
		t.Fatalf("fresh server: %+v", st)
	}
	p := dialRaw(t, srv.Addr().String())
	p.greet(size)
	id := <-ids

	for range 3 {
		p.write(`0{"a":1}`)
		if op, _ := p.read(); op != 0 {
			t.Fatalf("echo: opcode %d", op)
		}
	}
	p.write(`5{}`)
	if op, obj := p.read(); op != codec.OpFailure || !strings.Contains(string(obj), "ArgumentMissing") {
		t.Fatalf("opcode 5: %d %s", op, obj)
	}
	p.write(`-3{"id":1,"op":1,"data":{}}`)
	if op, _ := p.read(); op != codec.OpReply {
		t.Fatalf("call 1: opcode %d", op)
	}
	p.write(`-3{"id":2,"op":9,"data":{}}`)
	if op, obj := p.read(); op != codec.OpReplyFailure || !strings.Contains(string(obj), "UnknownOpcode") {
		t.Fatalf("call 9: %d %s", op, obj)
	}
	p.write(`-1{"reason":"Custom","message":"x"}`)
	p.write(`-1{ "reason" : "ArgumentMissing", "message": "y"}`)
	p.write(`300{}`) // no callback: dropped, but counted
	p.write(`-6{}`)  // the pong says the frames before were read
	if op, _ := p.read(); op != codec.OpPong {
		t.Fatalf("ping: opcode %d", op)
	}

	// A call from the server, answered with a failure of a reason of the
	// engine's.
	c, ok := srv.Conn(id)
	if !ok {
		t.Fatal("no connection")
	}
	done := make(chan error, 1)
	if err := c.CallAsync(testContext(t), 2, nil, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	op, obj := p.read()
	if op != codec.OpRequest {
		t.Fatalf("server's call: opcode %d", op)
	}
	b, err := srv.Host().Backlog(testContext(t))
	if err != nil || b.CallsOut != 1 {
		t.Fatalf("Backlog with a call out = %+v, %v; want CallsOut 1", b, err)
	}
	var callID uint64
	if _, err := fmt.Sscanf(string(obj), `{"id":%d`, &callID); err != nil {
		t.Fatalf("request %s: %v", obj, err)
	}
	p.write(fmt.Sprintf(`-5{"id":%d,"reason":"Overloaded","message":"busy"}`, callID))
	if err := <-done; handler.ReasonOf(err) != engine.ReasonOverloaded {
		t.Fatalf("server's call: %v, want Overloaded", err)
	}
	if o := <-calls; o.op != 2 || handler.ReasonOf(o.err) != engine.ReasonOverloaded || o.d <= 0 {
		t.Fatalf("observer saw %+v, want opcode 2, Overloaded", o)
	}

	st := srv.Stats()
	want := []struct {
		name      string
		got, want uint64
	}{
		{"Accepted", st.Accepted, 1},
		{"in 0", opFrames(st, 0).In, 3},
		{"out 0", opFrames(st, 0).Out, 3},
		{"in 5", opFrames(st, 5).In, 1},
		{"out -1", opFrames(st, codec.OpFailure).Out, 1},
		{"in -1", opFrames(st, codec.OpFailure).In, 2},
		{"out -2", opFrames(st, codec.OpMessageSize).Out, 1},
		{"in -3", opFrames(st, codec.OpRequest).In, 2},
		{"out -3", opFrames(st, codec.OpRequest).Out, 1},
		{"out -4", opFrames(st, codec.OpReply).Out, 1},
		{"out -5", opFrames(st, codec.OpReplyFailure).Out, 1},
		{"in -5", opFrames(st, codec.OpReplyFailure).In, 1},
		{"in -6", opFrames(st, codec.OpPing).In, 1},
		{"out -7", opFrames(st, codec.OpPong).Out, 1},
		{"in 300 (not by opcode)", opFrames(st, 300).In, 0},
		{"FramesIn", st.FramesIn, 3 + 1 + 2 + 2 + 1 + 1 + 1},
		{"FramesOut", st.FramesOut, 1 + 3 + 1 + 1 + 1 + 1 + 1},
		{"BytesIn", st.BytesIn, st.FramesIn * size},
		{"BytesOut", st.BytesOut, st.FramesOut * size},
		{"FailuresSent ArgumentMissing", st.FailuresSent[handler.ReasonArgumentMissing], 1},
		{"FailuresSent UnknownOpcode", st.FailuresSent[handler.ReasonUnknownOpcode], 1},
		{"FailuresReceived other", st.FailuresReceived[engine.FailureOther], 1},
		{"FailuresReceived ArgumentMissing", st.FailuresReceived[handler.ReasonArgumentMissing], 1},
		{"FailuresReceived Overloaded", st.FailuresReceived[engine.ReasonOverloaded], 1},
		{"CallsIn", uint64(st.CallsIn), 0},
	}
	for _, w := range want {
		if w.got != w.want {
			t.Errorf("%s = %d, want %d", w.name, w.got, w.want)
		}
	}
	if st.Conns != 1 || st.Loops != 1 {
		t.Errorf("Conns, Loops = %d, %d; want 1, 1", st.Conns, st.Loops)
	}

	_ = p.conn.Close()
	if reason := <-gone; !errors.Is(reason, io.EOF) {
		t.Fatalf("disconnect reason %v, want EOF", reason)
	}
	st = srv.Stats()
	if st.Disconnects[engine.DisconnectEOF] != 1 || st.Conns != 0 {
		t.Fatalf("after close: Disconnects %v, Conns %d; want eof 1, 0", st.Disconnects, st.Conns)
	}
}

// TestStatsRefused counts a connection past the limit under server_full.
func TestStatsRefused(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128), engine.WithMaxConns(1))
	a := dialRaw(t, srv.Addr().String())
	a.greet(128)
	b := dialRaw(t, srv.Addr().String())
	b.size = 128
	if op, _ := b.read(); op != codec.OpFailure {
		t.Fatalf("extra connection got opcode %d", op)
	}
	b.expectEOF()
	st := srv.Stats()
	if st.Refused[engine.RefuseServerFull] != 1 || st.Accepted != 1 || st.Conns != 1 {
		t.Fatalf("Refused %v, Accepted %d, Conns %d; want server_full 1, 1, 1", st.Refused, st.Accepted, st.Conns)
	}
}

// TestStatsBlockedLoop blocks the only event loop in a callback: what is
// sent meanwhile shows as the loop's queue, and Backlog, which needs the
// loop, gives up with ctx.
func TestStatsBlockedLoop(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	r := handler.NewRouter()
	r.On(7, func(handler.Conn, []byte) error {
		close(entered)
		<-release
		return nil
	})
	ids := make(chan uint64, 1)
	srv := startServer(t, r, engine.WithMessageSize(128), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	id := <-ids
	p.write(`7{}`)
	<-entered
	for range 3 {
		if err := srv.Send(id, 0, map[string]int{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if st := srv.Stats(); st.LoopQueue != 3 || st.LoopQueueMax != 3 {
		t.Errorf("LoopQueue, LoopQueueMax = %d, %d; want 3, 3", st.LoopQueue, st.LoopQueueMax)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := srv.Host().Backlog(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Backlog on a blocked loop: %v, want DeadlineExceeded", err)
	}
	close(release)
	for range 3 {
		p.read()
	}
	if _, err := srv.Host().Backlog(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.LoopQueue != 0 {
		t.Errorf("LoopQueue after = %d, want 0", st.LoopQueue)
	}
}

// TestStatsWorkerQueue has one worker busy with a call: a second call on
// the same connection waits in its queue, a call on another connection
// waits for a worker.
func TestStatsWorkerQueue(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	entered := make(chan struct{})
	r := handler.NewRouter()
	r.OnCall(1, func(handler.Conn, []byte) (any, error) {
		once.Do(func() { close(entered) })
		<-release
		return nil, nil
	})
	srv := startServer(t, r, engine.WithMessageSize(128), engine.WithWorkerPool(1, 16))
	a := dialRaw(t, srv.Addr().String())
	a.greet(128)
	b := dialRaw(t, srv.Addr().String())
	b.greet(128)
	a.write(`-3{"id":1,"op":1,"data":{}}`)
	<-entered
	a.write(`-3{"id":2,"op":1,"data":{}}`)
	b.write(`-3{"id":1,"op":1,"data":{}}`)
	// A call is counted in as it is read, and queued to the pool just
	// after: wait for both.
	waitUntil(t, "3 calls in, b's queued for a worker", func() bool {
		st := srv.Stats()
		return st.CallsIn == 3 && st.WorkerQueue == 1
	})
	if bl, err := srv.Host().Backlog(testContext(t)); err != nil || bl.Callbacks != 2 {
		t.Errorf("Backlog = %+v, %v; want 2 callbacks queued", bl, err)
	}
	close(release)
	a.read()
	a.read()
	b.read()
	waitUntil(t, "no call in", func() bool { return srv.Stats().CallsIn == 0 })
}

// TestStatsOverloadedCallsIn refuses a call past the worker queue: it
// leaves CallsIn as it was.
func TestStatsOverloadedCallsIn(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	r := handler.NewRouter()
	r.OnCall(1, func(handler.Conn, []byte) (any, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	})
	srv := startServer(t, r, engine.WithMessageSize(128), engine.WithWorkerPool(1, 1))
	a := dialRaw(t, srv.Addr().String())
	a.greet(128)
	a.write(`-3{"id":1,"op":1,"data":{}}`)
	<-entered
	a.write(`-3{"id":2,"op":1,"data":{}}`) // queued
	a.write(`-3{"id":3,"op":1,"data":{}}`) // refused: Overloaded
	if op, obj := a.read(); op != codec.OpReplyFailure || !strings.Contains(string(obj), engine.ReasonOverloaded) {
		t.Fatalf("third call: %d %s", op, obj)
	}
	if st := srv.Stats(); st.CallsIn != 2 || st.FailuresSent[engine.ReasonOverloaded] != 1 {
		t.Errorf("CallsIn %d, Overloaded sent %d; want 2, 1", st.CallsIn, st.FailuresSent[engine.ReasonOverloaded])
	}
	close(release)
	a.read()
	a.read()
	waitUntil(t, "no call in", func() bool { return srv.Stats().CallsIn == 0 })
}

// TestBacklogSlowPeer fills a peer that does not read: Backlog finds its
// bytes and names it.
func TestBacklogSlowPeer(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 2)
	srv := startServer(t, handler.NewRouter(), engine.WithMessageSize(4096),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }),
		engine.WithMaxOutbound(64<<20, engine.SlowDrop))
	slow := dialRaw(t, srv.Addr().String()) // never reads past the greeting
	slow.greet(4096)
	slowID := <-ids
	other := dialRaw(t, srv.Addr().String())
	other.greet(4096)
	<-ids
	big := map[string]string{"pad": strings.Repeat("x", 4000)}
	for range 2000 { // 8 MB: more than the kernel's buffers hold
		if err := srv.Send(slowID, 0, big); err != nil {
			t.Fatal(err)
		}
	}
	var b engine.Backlog
	waitUntil(t, "a backlog", func() bool {
		var err error
		b, err = srv.Host().Backlog(testContext(t))
		return err == nil && b.Bytes > 1<<20
	})
	if b.MaxConn != slowID || b.MaxBytes != b.Bytes {
		t.Fatalf("Backlog = %+v, want all of it on conn %d", b, slowID)
	}
}

func TestDisconnectReasonOf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want engine.DisconnectReason
	}{
		{io.EOF, engine.DisconnectEOF},
		{engine.ErrIdle, engine.DisconnectIdle},
		{engine.ErrSlowConsumer, engine.DisconnectSlowConsumer},
		{engine.ErrRateLimited, engine.DisconnectRateLimit},
		{engine.ErrShutdown, engine.DisconnectShutdown},
		{engine.ErrLocalClose, engine.DisconnectLocal},
		{fmt.Errorf("%w: bad first frame", engine.ErrProtocol), engine.DisconnectProtocol},
		{fmt.Errorf("%w: 7", engine.ErrSizeOutOfBounds), engine.DisconnectProtocol},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, engine.DisconnectError},
		{nil, engine.DisconnectError},
	} {
		if got := engine.DisconnectReasonOf(c.err); got != c.want {
			t.Errorf("DisconnectReasonOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestCallObserverOutcomes observes a Call that succeeds, one that times
// out, and a CallAsync; removing the observer stops it.
func TestCallObserverOutcomes(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	srv := startServer(t, handler.NewRouter(), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	cr := handler.NewRouter()
	cr.OnCall(1, func(handler.Conn, []byte) (any, error) { return nil, nil })
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), cr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	id := <-ids
	var mu sync.Mutex
	var seen []observed
	srv.Host().ObserveCalls(func(op codec.Opcode, d time.Duration, err error) {
		mu.Lock()
		seen = append(seen, observed{op, d, err})
		mu.Unlock()
	})
	ctx := testContext(t)
	if err := srv.Call(ctx, id, 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := srv.Call(short, id, 2, nil, nil); !errors.Is(err, context.DeadlineExceeded) && handler.ReasonOf(err) != handler.ReasonUnknownOpcode {
		t.Fatalf("call 2: %v", err)
	}
	c, _ := srv.Conn(id)
	done := make(chan error, 1)
	if err := c.CallAsync(ctx, 1, nil, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	srv.Host().ObserveCalls(nil)
	if err := srv.Call(ctx, id, 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0].op != 1 || seen[0].err != nil || seen[1].op != 2 || seen[1].err == nil ||
		seen[2].op != 1 || seen[2].err != nil {
		t.Fatalf("observer saw %+v, want calls 1 ok, 2 failed, 1 ok", seen)
	}
}

// TestStatsAfterShutdown reads a stopped server: Stats keeps the totals,
// and Backlog does not wait for loops that have stopped.
func TestStatsAfterShutdown(t *testing.T) {
	t.Parallel()
	srv, err := engine.NewServer(echoRouter(), engine.WithMessageSize(128))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := srv.Host().Backlog(testContext(t)); err != nil || b != (engine.Backlog{}) {
		t.Fatalf("Backlog before Start = %+v, %v", b, err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	if err := srv.Shutdown(testContext(t)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := srv.Host().Backlog(testContext(t)); err != nil || time.Since(start) > time.Second {
		t.Fatalf("Backlog after Shutdown: %v after %v", err, time.Since(start))
	}
	st := srv.Stats()
	if st.Accepted != 1 || st.Disconnects[engine.DisconnectShutdown] != 1 || st.Conns != 0 {
		t.Fatalf("after Shutdown: Accepted %d, Disconnects %v, Conns %d", st.Accepted, st.Disconnects, st.Conns)
	}
}

// TestWorkerQueueCountsFramesOnly: with a one-frame queue and the one
// worker busy, a new connection's connect callback waits in its queue; its
// first call must wait beside it, not be refused as Overloaded (it was:
// the callbacks counted against the queue of frames).
func TestWorkerQueueCountsFramesOnly(t *testing.T) {
	t.Parallel()
	r := handler.NewRouter()
	blk := newBlocker(t, r)
	srv := startServer(t, r, engine.WithMessageSize(128), engine.WithWorkerPool(1, 1),
		engine.WithOnConnect(func(handler.Conn) {}))
	a := dialRaw(t, srv.Addr().String())
	a.greet(128)
	a.write(fmt.Sprintf(`-3{"id":1,"op":%d,"data":{}}`, opBlock))
	blk.wait(t) // the one worker is busy
	b := dialRaw(t, srv.Addr().String())
	b.greet(128) // its connect callback is queued behind a's call
	b.write(fmt.Sprintf(`-3{"id":7,"op":%d,"data":{}}`, opBlock))
	waitUntil(t, "b's call in", func() bool { return srv.Stats().CallsIn == 2 })
	blk.free()
	if op, obj := a.read(); op != codec.OpReply {
		t.Fatalf("a's call: %d %s", op, obj)
	}
	if op, obj := b.read(); op != codec.OpReply || !strings.Contains(string(obj), `"id":7`) {
		t.Fatalf("b's first call, made while its connect callback waited: %d %s, want its reply", op, obj)
	}
}
