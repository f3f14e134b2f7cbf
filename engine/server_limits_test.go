// Tests of what a server does with peers and options that are out of
// bounds: panicking callbacks, size changes, invalid options, malformed
// runs, bad size frames and the server's own bounds.

package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestCallbackPanicsAreContained: a panic in the connect callback or a
// handler never reaches gnet; the connection keeps working.
func TestCallbackPanicsAreContained(t *testing.T) {
	t.Parallel()
	r := handler.NewRouter()
	r.On(1, func(handler.Conn, []byte) error { panic("boom") })
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	srv := startServer(t, r, engine.WithMessageSize(128),
		engine.WithOnConnect(func(handler.Conn) { panic("connect boom") }))
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	p.write(`1{}`)
	op, obj := p.read()
	if op != codec.OpFailure || !strings.Contains(string(obj), `"reason":"InternalError"`) || strings.Contains(string(obj), "boom") {
		t.Fatalf("panic answered %d %s", op, obj)
	}
	p.write(`0{"after":"panic"}`)
	if op, obj := p.read(); op != 0 || string(obj) != `{"after":"panic"}` {
		t.Fatalf("after panic: %d %s", op, obj)
	}
}

// TestSizeChangeBothWays changes the message size from the client and then
// from the server; frames too large for the old size then pass.
func TestSizeChangeBothWays(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128), engine.WithSizeBounds(codec.MinMessageSize, 64<<10),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	rec := newRecorder()
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { rec.add(string(data)); return nil })
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	id := <-ids
	<-cl.Ready()
	big := strings.Repeat("x", 300)
	if err := cl.SetMessageSize(512); err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(0, map[string]string{"big": big}); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, 1); got[0] != `{"big":"`+big+`"}` {
		t.Fatalf("after client size change: %q", got[0])
	}
	if err := srv.SetMessageSize(id, 1024); err != nil {
		t.Fatal(err)
	}
	bigger := strings.Repeat("y", 800)
	// The server's -2 reaches the client before the echo of anything sent
	// after it is read; wait until the client switched.
	deadline := time.Now().Add(testTimeout)
	for cl.MessageSize() != 1024 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := cl.Send(0, map[string]string{"big": bigger}); err != nil {
		t.Fatal(err)
	}
	if got := rec.wait(t, 2); got[1] != `{"big":"`+bigger+`"}` {
		t.Fatalf("after server size change: %q", got[1])
	}
	if err := srv.SetMessageSize(id, 10); !errors.Is(err, codec.ErrInvalidSize) {
		t.Fatalf("out-of-bounds size: %v", err)
	}
}

// TestInvalidOptions: bad option values are setup errors naming the option.
func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range [][]engine.ServerOption{
		{engine.WithMessageSize(10)},
		{engine.WithEventLoops(0)},
		{engine.WithSizeBounds(1000, 100)},
		{engine.WithMaxOutbound(10, engine.SlowClose)},
	} {
		if _, err := engine.NewServer(handler.NewRouter(), opts...); !errors.Is(err, engine.ErrInvalidOption) {
			t.Errorf("NewServer: %v, want ErrInvalidOption", err)
		}
	}
	if _, err := engine.NewServer(nil); !errors.Is(err, engine.ErrInvalidOption) {
		t.Errorf("nil router: %v", err)
	}
}

// TestMalformedRunCloses: a peer that makes a rare mistake (one malformed
// frame in 20) is answered with a MalformedPayload failure each time and
// stays; 16 malformed frames in a row close the connection with
// ErrProtocol, after the failures; and so do 15 malformed frames and one
// well-formed one, repeated: a valid frame now and then does not buy a
// hostile peer an answer per frame for good.
func TestMalformedRunCloses(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(64))...)
	malformed := func(p *rawPeer, what string) {
		t.Helper()
		if op, obj := p.read(); op != codec.OpFailure || !strings.Contains(string(obj), "MalformedPayload") {
			t.Fatalf("%s: malformed frame answered %d %s", what, op, obj)
		}
	}
	echo := func(p *rawPeer, i int) {
		t.Helper()
		p.write(fmt.Sprintf(`0{"ok":%d}`, i))
		if op, obj := p.read(); op != 0 || string(obj) != fmt.Sprintf(`{"ok":%d}`, i) {
			t.Fatalf("echo %d: %d %s", i, op, obj)
		}
	}

	rare := dialRaw(t, srv.Addr().String())
	rare.greet(64)
	rareID := ev.idOf(ctx, t, rare)
	for i := range 400 {
		if i%20 == 0 {
			rare.write("zz{}")
			malformed(rare, "rare")
		}
		echo(rare, i)
	}

	run := dialRaw(t, srv.Addr().String())
	run.greet(64)
	runID := ev.idOf(ctx, t, run)
	for range 16 {
		run.write("0{")
	}
	for range 16 {
		malformed(run, "in a row")
	}
	run.expectEOF()
	if r := ev.reasonFor(ctx, t, runID); !errors.Is(r, engine.ErrProtocol) {
		t.Errorf("16 in a row: closed with %v, want ErrProtocol", r)
	}

	mixed := dialRaw(t, srv.Addr().String())
	mixed.greet(64)
	mixedID := ev.idOf(ctx, t, mixed)
	var buf []byte
	for range 4 {
		for range 15 {
			buf = append(buf, fmt.Sprintf("%-64s", "zz{}")...)
		}
		buf = append(buf, fmt.Sprintf("%-64s", `0{"ok":1}`)...)
	}
	if _, err := mixed.conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	if r := ev.reasonFor(ctx, t, mixedID); !errors.Is(r, engine.ErrProtocol) {
		t.Errorf("15 malformed and 1 valid, repeated: closed with %v, want ErrProtocol", r)
	}
	if _, ok := srv.Conn(rareID); !ok {
		t.Fatal("the peer with rare mistakes was closed")
	}
	echo(rare, 400)
}

// TestSizeFrameOneRule sends every kind of bad message_size in a -2 frame:
// each is refused with InvalidMessageSize and a close, whatever its JSON
// type; only a -2 frame with no message_size at all is merely malformed.
func TestSizeFrameOneRule(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(128))...)
	for _, size := range []string{"0", "-1", "2147483648", "9223372036854775808", "1e400", "256.5", `"256"`, "null", "[256]", "32"} {
		p := dialRaw(t, srv.Addr().String())
		p.greet(128)
		id := ev.idOf(ctx, t, p)
		p.write(`-2{"message_size":` + size + `}`)
		op, obj := p.read()
		if op != codec.OpFailure || !strings.Contains(string(obj), engine.ReasonInvalidSize) {
			t.Errorf("message_size %s answered %d %s", size, op, obj)
			continue
		}
		p.expectEOF()
		if r := ev.reasonFor(ctx, t, id); !errors.Is(r, engine.ErrSizeOutOfBounds) {
			t.Errorf("message_size %s: closed with %v", size, r)
		}
	}
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	p.write(`-2{"size":256}`)
	if op, obj := p.read(); op != codec.OpFailure || !strings.Contains(string(obj), "MalformedPayload") {
		t.Fatalf("a -2 frame without message_size answered %d %s", op, obj)
	}
	p.write(`0{"still":"open"}`)
	if op, obj := p.read(); op != 0 || string(obj) != `{"still":"open"}` {
		t.Fatalf("after a -2 frame without message_size: %d %s", op, obj)
	}
}

// TestServerBoundsAreItsOwn: by default a peer may not announce a frame
// larger than the server's own size (it would pin that much buffer with a
// partial frame): the -2 is refused with InvalidMessageSize and a close.
// A size the server chose for the connection comes back accepted.
func TestServerBoundsAreItsOwn(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(128))...)
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	p.write(`-2{"message_size":65536}`)
	if op, obj := p.read(); op != codec.OpFailure || !strings.Contains(string(obj), engine.ReasonInvalidSize) {
		t.Fatalf("a -2 past the server's size answered %d %s", op, obj)
	}
	p.expectEOF()

	q := dialRaw(t, srv.Addr().String())
	q.greet(128)
	id := ev.idOf(ctx, t, q)
	if err := srv.SetMessageSize(id, 1024); err != nil {
		t.Fatal(err)
	}
	if op, obj := q.read(); op != codec.OpMessageSize || string(obj) != `{"message_size":1024}` {
		t.Fatalf("announcement %d %s", op, obj)
	}
	q.size = 1024
	q.write(`-2{"message_size":1024}`)
	q.write(`0{"big":"enough"}`)
	if op, obj := q.read(); op != 0 || string(obj) != `{"big":"enough"}` {
		t.Fatalf("after the server's own size change: %d %s", op, obj)
	}
}
