// Tests of the server's core: accepting and announcing the size, framing,
// sends by id and to all, the worker pool, shutdown and Unix sockets.

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestAcceptAnnouncesSizeAndUniqueIDs checks the accept sequence: the -2
// frame first, then the connect callback with a net id that is unique and
// never reused, even after connections close.
func TestAcceptAnnouncesSizeAndUniqueIDs(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 16)
	closed := make(chan uint64, 16)
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }),
		engine.WithOnDisconnect(func(c handler.Conn, _ error) { closed <- c.ID() }))
	seen := map[uint64]bool{}
	for i := range 6 {
		p := dialRaw(t, srv.Addr().String())
		p.size = 128
		buf := make([]byte, 128)
		if _, err := io.ReadFull(p.r, buf); err != nil {
			t.Fatal(err)
		}
		if want := `-2{"message_size":128}`; string(buf[:len(want)]) != want || strings.TrimRight(string(buf[len(want):]), " ") != "" {
			t.Fatalf("first frame %q", buf)
		}
		id := <-ids
		if seen[id] || id == 0 {
			t.Fatalf("net id %d reused or zero (seen %v)", id, seen)
		}
		seen[id] = true
		if i%2 == 0 {
			p.conn.Close()
			if got := <-closed; got != id {
				t.Fatalf("disconnect of %d, want %d", got, id)
			}
		}
	}
}

// TestFramingPartialAndBatched sends one frame in two pieces and then many
// frames in one write: every frame is dispatched once, in order.
func TestFramingPartialAndBatched(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echoRouter(), engine.WithMessageSize(100))
	p := dialRaw(t, srv.Addr().String())
	p.greet(100)

	frame := []byte(`7{"part":"split across two writes"}`)
	frame = append(frame, []byte(strings.Repeat(" ", 100-len(frame)))...)
	if _, err := p.conn.Write(frame[:30]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the first piece be read on its own
	if _, err := p.conn.Write(frame[30:]); err != nil {
		t.Fatal(err)
	}
	if op, obj := p.read(); op != 7 || string(obj) != `{"part":"split across two writes"}` {
		t.Fatalf("got %d %s", op, obj)
	}

	var batch []byte
	const n = 300
	for i := range n {
		f, err := codec.Append(nil, 100, 3, map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		batch = append(batch, f...)
	}
	if _, err := p.conn.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		op, obj := p.read()
		if want := fmt.Sprintf(`{"i":%d}`, i); op != 3 || string(obj) != want {
			t.Fatalf("frame %d: %d %s, want %s", i, op, obj, want)
		}
	}
}

// TestSendToUnknownOrClosedConn checks that a send by net id to a
// connection that never existed or has closed is an error, never a write.
func TestSendToUnknownOrClosedConn(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	gone := make(chan struct{})
	srv := startServer(t, echoRouter(),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }),
		engine.WithOnDisconnect(func(handler.Conn, error) { close(gone) }))
	if err := srv.Send(12345, 1, map[string]int{}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Fatalf("send to unknown id: %v", err)
	}
	p := dialRaw(t, srv.Addr().String())
	p.greet(1024)
	id := <-ids
	conn, ok := srv.Conn(id)
	if !ok {
		t.Fatal("Conn: not found")
	}
	p.conn.Close()
	<-gone
	if err := srv.Send(id, 1, map[string]int{}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Fatalf("send to closed id: %v", err)
	}
	if err := conn.Send(1, map[string]int{}); !errors.Is(err, engine.ErrClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("send on closed conn: %v", err)
	}
}

// countingValue counts how often it is encoded.
type countingValue struct{ n *atomic.Int32 }

func (c countingValue) MarshalJSON() ([]byte, error) {
	c.n.Add(1)
	return []byte(`{"hello":"all"}`), nil
}

// TestSendAllEncodesOnce sends to every connection on two loops and checks
// the JSON was encoded once for the call.
func TestSendAllEncodesOnce(t *testing.T) {
	t.Parallel()
	ready := make(chan uint64, 8)
	srv := startServer(t, handler.NewRouter(), engine.WithEventLoops(2),
		engine.WithOnConnect(func(c handler.Conn) { ready <- c.ID() }))
	const n = 6
	rec := newRecorder()
	r := handler.NewRouter()
	r.On(9, func(c handler.Conn, data []byte) error {
		rec.add(fmt.Sprintf("%d:%s", c.ID(), data))
		return nil
	})
	d, err := engine.NewDialer(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for range n {
		if _, err := d.Dial(testContext(t), srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		<-ready
	}
	var count atomic.Int32
	if err := srv.SendAll(9, countingValue{&count}); err != nil {
		t.Fatal(err)
	}
	frames := rec.wait(t, n)
	if count.Load() != 1 {
		t.Errorf("encoded %d times, want once", count.Load())
	}
	clients := map[string]bool{}
	for _, f := range frames {
		id, data, _ := strings.Cut(f, ":")
		if data != `{"hello":"all"}` {
			t.Errorf("frame %q", f)
		}
		clients[id] = true
	}
	if len(clients) != n {
		t.Errorf("%d distinct clients got it, want %d", len(clients), n)
	}
}

// TestPeerSizeOutOfBounds: a -2 outside the bounds gets a failure frame,
// then the connection is closed.
func TestPeerSizeOutOfBounds(t *testing.T) {
	t.Parallel()
	reasons := make(chan error, 2)
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128),
		engine.WithOnDisconnect(func(_ handler.Conn, r error) { reasons <- r }))
	for _, size := range []string{"10", "1099511627776"} {
		p := dialRaw(t, srv.Addr().String())
		p.greet(128)
		p.write(`-2{"message_size": ` + size + `}`)
		op, obj := p.read()
		if op != codec.OpFailure || !strings.Contains(string(obj), `"reason":"InvalidMessageSize"`) {
			t.Fatalf("size %s: got %d %s", size, op, obj)
		}
		p.expectEOF()
		if r := <-reasons; !errors.Is(r, engine.ErrSizeOutOfBounds) {
			t.Fatalf("disconnect reason %v", r)
		}
	}
}

// TestBadPeerDoesNotDisturbOthers floods one connection with malformed
// frames while another echoes: the good one sees every echo, the bad one
// gets a failure per frame and, with no bound on malformed frames in a row
// (WithMaxMalformed(0); TestMalformedRunCloses has the default), stays
// connected.
func TestBadPeerDoesNotDisturbOthers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echoRouter(), engine.WithMessageSize(64), engine.WithMaxMalformed(0))
	bad := dialRaw(t, srv.Addr().String())
	bad.greet(64)
	good := dialRaw(t, srv.Addr().String())
	good.greet(64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		junk := []string{"abc{}", "{}", `1{"a":`, "\x00\x01\x02", `1{"a":1}}`, `99999999999{}`}
		var buf []byte
		for i := range 500 {
			f := []byte(junk[i%len(junk)])
			for len(f) < 64 {
				f = append(f, ' ')
			}
			buf = append(buf, f...)
		}
		_, _ = bad.conn.Write(buf)
	}()
	for i := range 200 {
		good.write(fmt.Sprintf(`0{"n":%d}`, i))
		if op, obj := good.read(); op != 0 || string(obj) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("echo %d: %d %s", i, op, obj)
		}
	}
	wg.Wait()
	for i := range 500 {
		op, obj := bad.read()
		if op != codec.OpFailure || !strings.Contains(string(obj), `"reason":"MalformedPayload"`) {
			t.Fatalf("bad frame %d answered %d %s", i, op, obj)
		}
	}
	bad.write(`0{"still":"here"}`)
	if op, obj := bad.read(); op != 0 || string(obj) != `{"still":"here"}` {
		t.Fatalf("bad peer after the flood: %d %s", op, obj)
	}
}

// TestWorkerPoolKeepsOrder runs callbacks on a pool that may block; each
// connection's frames are still handled in order.
func TestWorkerPoolKeepsOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[uint64][]int{}
	done := make(chan struct{}, 4)
	const n = 300
	r := handler.NewRouter()
	handler.Handle(r, 1, func(c handler.Conn, m struct{ I int }) error {
		if m.I%50 == 0 {
			time.Sleep(time.Millisecond) // a callback that blocks
		}
		mu.Lock()
		got[c.ID()] = append(got[c.ID()], m.I)
		last := len(got[c.ID()]) == n
		mu.Unlock()
		if last {
			done <- struct{}{}
		}
		return nil
	})
	srv := startServer(t, r, engine.WithMessageSize(64), engine.WithWorkerPool(4, 1024))
	for range 3 {
		p := dialRaw(t, srv.Addr().String())
		p.greet(64)
		var buf []byte
		for i := range n {
			f, _ := codec.Append(nil, 64, 1, map[string]int{"I": i})
			buf = append(buf, f...)
		}
		if _, err := p.conn.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatal("timed out")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for id, seq := range got {
		for i, v := range seq {
			if v != i {
				t.Fatalf("conn %d: frame %d handled as %d", id, i, v)
			}
		}
	}
}

// TestGracefulShutdown queues many frames and shuts down at once: every
// frame accepted before Shutdown arrives, the disconnect callbacks run with
// ErrShutdown, and later sends fail with ErrServerClosed.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	reasons := make(chan error, 1)
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithMessageSize(64),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }),
		engine.WithOnDisconnect(func(_ handler.Conn, r error) { reasons <- r }))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, srv.Addr().String())
	p.greet(64)
	id := <-ids
	const n = 20000
	for i := range n {
		if err := srv.Send(id, 4, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	served := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		served <- srv.Shutdown(ctx)
	}()
	for i := range n {
		if op, obj := p.read(); op != 4 || string(obj) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("frame %d: %d %s", i, op, obj)
		}
	}
	p.expectEOF()
	if err := <-served; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if r := <-reasons; !errors.Is(r, engine.ErrShutdown) {
		t.Errorf("disconnect reason %v", r)
	}
	if err := srv.Send(id, 4, map[string]int{}); !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("send after shutdown: %v", err)
	}
	if err := srv.SendAll(4, map[string]int{}); !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("send to all after shutdown: %v", err)
	}
}

// TestServeReturnsOnCancel checks the blocking form: Serve returns
// ErrServerClosed once its context is cancelled.
func TestServeReturnsOnCancel(t *testing.T) {
	t.Parallel()
	srv, err := engine.NewServer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, "tcp://127.0.0.1:0") }()
	deadline := time.Now().Add(testTimeout)
	for srv.Addr() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, engine.ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
	}
}

// TestMaxConns: a connection past the cap gets a ServerFull failure and is
// closed; the others are untouched.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128), engine.WithMaxConns(2))
	a := dialRaw(t, srv.Addr().String())
	a.greet(128)
	b := dialRaw(t, srv.Addr().String())
	b.greet(128)
	c := dialRaw(t, srv.Addr().String())
	c.size = 128
	op, obj := c.read()
	if op != codec.OpFailure || !strings.Contains(string(obj), `"reason":"ServerFull"`) {
		t.Fatalf("extra connection got %d %s", op, obj)
	}
	c.expectEOF()
	a.write(`0{"ok":1}`)
	if op, _ := a.read(); op != 0 {
		t.Fatalf("first connection disturbed: %d", op)
	}
}

// TestUnixSocket serves and dials over a Unix-domain socket.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rpc.sock")
	srv, err := engine.NewServer(echoRouter(), engine.WithMessageSize(256))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "unix://"+path); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := newRecorder()
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { rec.add(string(data)); return nil })
	cl, err := engine.Dial(testContext(t), "unix://"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	if err := cl.Send(0, map[string]string{"over": "unix"}); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, 1); got[0] != `{"over":"unix"}` {
		t.Fatalf("got %q", got)
	}
}
