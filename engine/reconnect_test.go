// Tests of client reconnection: frames held while disconnected, backoff,
// and a client that does not reconnect.

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

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
