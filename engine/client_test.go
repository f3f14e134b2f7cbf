package engine_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// listenRaw starts a hand-written server that runs serve on its first
// connection.
func listenRaw(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		serve(c)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestClientHoldsFramesUntilSizeKnown: frames sent before the server's -2
// arrives are held, then written at the announced size, in order.
func TestClientHoldsFramesUntilSizeKnown(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	sent := make(chan struct{})
	addr := listenRaw(t, func(c net.Conn) {
		<-sent // the client sends before the size is known
		f, _ := codec.AppendMessageSize(nil, 96, 96)
		if _, err := c.Write(f); err != nil {
			return
		}
		buf := make([]byte, 3*96)
		if _, err := io.ReadFull(c, buf); err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf)
	})
	cl, err := engine.Dial(testContext(t), addr, handler.NewRouter(), engine.WithDialNoWait())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	for i := range 3 {
		if err := cl.Send(codec.Opcode(i), map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if cl.MessageSize() != 0 {
		t.Fatalf("size known too early: %d", cl.MessageSize())
	}
	close(sent)
	var want []byte
	for i := range 3 {
		want, _ = codec.Append(want, 96, codec.Opcode(i), map[string]int{"i": i})
	}
	select {
	case s := <-got:
		if s != string(want) {
			t.Fatalf("server read %q\nwant %q", s, want)
		}
	case <-time.After(testTimeout):
		t.Fatal("timed out")
	}
	<-cl.Ready()
	if cl.MessageSize() != 96 {
		t.Fatalf("size %d", cl.MessageSize())
	}
}

// TestClientRejectsBadFirstFrame: a server whose first frame is not a
// usable -2 ends the connection with a clear reason.
func TestClientRejectsBadFirstFrame(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		first string
		want  error
	}{
		{"not-size", `1{"hello": 1}` + pad(100), engine.ErrProtocol},
		{"too-large", `-2{"message_size": 1099511627776}`, engine.ErrSizeOutOfBounds},
		{"too-small", `-2{"message_size": 8}`, engine.ErrSizeOutOfBounds},
		{"garbage", "abc{" + pad(2000), engine.ErrProtocol},
		{"endless", "1" + string(make([]byte, 0)) + `{"a":"` + pad(1<<21), engine.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := listenRaw(t, func(c net.Conn) {
				_, _ = c.Write([]byte(tc.first))
				_, _ = io.Copy(io.Discard, c)
			})
			// Dial returns the reason: the peer is no simplerpc server.
			cl, err := engine.Dial(testContext(t), addr, handler.NewRouter())
			if cl != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Dial = %v, %v, want %v", cl, err, tc.want)
			}
			// Held back with WithDialNoWait, the client ends with it.
			addr = listenRaw(t, func(c net.Conn) {
				_, _ = c.Write([]byte(tc.first))
				_, _ = io.Copy(io.Discard, c)
			})
			cl, err = engine.Dial(testContext(t), addr, handler.NewRouter(), engine.WithDialNoWait())
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-cl.Done():
			case <-time.After(testTimeout):
				t.Fatal("client did not give up")
			}
			if !errors.Is(cl.Err(), tc.want) {
				t.Fatalf("reason %v, want %v", cl.Err(), tc.want)
			}
			if err := cl.Send(0, map[string]int{}); !errors.Is(err, engine.ErrClosed) {
				t.Fatalf("send after close: %v", err)
			}
		})
	}
}

func pad(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	return string(b)
}

// TestClientDialErrors: a refused connection and a bad address are errors
// from Dial, and leave nothing running.
func TestClientDialErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := engine.Dial(testContext(t), addr, handler.NewRouter()); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	if _, err := engine.Dial(testContext(t), "udp://127.0.0.1:1", handler.NewRouter()); err == nil {
		t.Fatal("dial with an unsupported network succeeded")
	}
	if _, err := engine.Dial(testContext(t), "127.0.0.1:1", nil); !errors.Is(err, engine.ErrInvalidOption) {
		t.Fatalf("nil router: %v", err)
	}
}

// TestClientOnDisconnectReason: the server closing the connection gives
// the client io.EOF, and Run returns it.
func TestClientOnDisconnectReason(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	srv := startServer(t, echoRouter(), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	reasons := make(chan error, 1)
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), handler.NewRouter(),
		engine.WithOnDisconnect(func(_ handler.Conn, r error) { reasons <- r }))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := srv.Conn(<-ids)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Run(testContext(t)); !errors.Is(err, io.EOF) {
		t.Fatalf("Run: %v", err)
	}
	if r := <-reasons; !errors.Is(r, io.EOF) {
		t.Fatalf("disconnect reason %v", r)
	}
	if err := fmt.Errorf("wrapped: %w", cl.Err()); !errors.Is(err, io.EOF) {
		t.Fatalf("Err: %v", cl.Err())
	}
}

// TestClientRefusesFirstSize has a server announce, in its first frame, a
// size past the client's bounds: the client answers with an
// InvalidMessageSize failure frame at that size, as PROTOCOL.md §3 wants,
// then closes; it reports no connect and so no disconnect either, and Dial's
// client ends with ErrSizeOutOfBounds.
func TestClientRefusesFirstSize(t *testing.T) {
	t.Parallel()
	const size = 128 << 10 // over the default 64 KiB bound
	addr, accept := rawServer(t, size)
	events := make(chan string, 4)
	cl, err := engine.Dial(testContext(t), addr, handler.NewRouter(),
		engine.WithOnConnect(func(handler.Conn) { events <- "connect" }),
		engine.WithOnDisconnect(func(handler.Conn, error) { events <- "disconnect" }), engine.WithDialNoWait())
	if err != nil {
		t.Fatal(err)
	}
	p := accept()
	op, obj := p.read()
	var f handler.Error
	if err := codec.Unmarshal(obj, &f); err != nil || op != codec.OpFailure || f.Reason != engine.ReasonInvalidSize {
		t.Fatalf("the client answered %d%s (%v), want an %s failure", op, obj, err, engine.ReasonInvalidSize)
	}
	select {
	case <-cl.Done():
	case <-testContext(t).Done():
		t.Fatal("the client did not close")
	}
	if !errors.Is(cl.Err(), engine.ErrSizeOutOfBounds) {
		t.Errorf("client ended with %v, want ErrSizeOutOfBounds", cl.Err())
	}
	select {
	case e := <-events:
		t.Errorf("%s callback for a connection that was never ready", e)
	default:
	}
}

// TestClientCloseBeforeReady closes a client whose server never sends its
// -2 frame: the close takes effect at once, not at the dial timeout.
func TestClientCloseBeforeReady(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c) // never speaks
		}
	}()
	// A dial timeout far past the test's own bound: only Close can end it.
	cl, err := engine.Dial(testContext(t), ln.Addr().String(), handler.NewRouter(), engine.WithDialTimeout(time.Hour), engine.WithDialNoWait())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.Done():
	case <-testContext(t).Done():
		t.Fatal("Close before the size was known did not close the client")
	}
	if !errors.Is(cl.Err(), engine.ErrLocalClose) {
		t.Errorf("client ended with %v, want ErrLocalClose", cl.Err())
	}
}
