package engine_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestWriteDeadline has a raw peer that never reads while the server keeps
// sending to it, and pings the server all the while: the server closes it
// with ErrWriteDeadline (the pings do not keep it alive, its backlog is far
// under the outbound cap), while a client that reads stays open.
func TestWriteDeadline(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithWriteDeadline(150*time.Millisecond), engine.WithMaxOutbound(64<<20, engine.SlowClose))...)
	addr := srv.Addr().String()

	got := make(chan struct{}, 1024)
	r := handler.NewRouter()
	r.On(1, func(handler.Conn, []byte) error {
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	})
	cl, err := engine.Dial(ctx, addr, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	healthy := ev.next(ctx, t).ID()

	p := dialRaw(t, addr)
	p.greet(codec.DefaultMessageSize)
	stalled := ev.idOf(ctx, t, p)
	_ = p.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	sc, _ := srv.Conn(stalled)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // pings from the peer that does not read
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			b, _ := codec.Append(nil, codec.DefaultMessageSize, codec.OpPing, map[string]int{"t": 1})
			if _, err := p.conn.Write(b); err != nil {
				return
			}
		}
	}()
	// Fill the kernel's buffers toward the peer, then keep some waiting.
	for i := 0; ; i++ {
		if err := sc.Send(1, map[string]int{"i": i}); err != nil {
			break // closed: the deadline came
		}
		if i%256 == 255 {
			select {
			case <-sc.Context().Done():
			case <-time.After(time.Millisecond):
				continue
			}
			break
		}
	}
	if reason := ev.reasonFor(ctx, t, stalled); !errors.Is(reason, engine.ErrWriteDeadline) {
		t.Fatalf("the stalled peer closed with %v, want ErrWriteDeadline", reason)
	}
	// The reading client is still served.
	if err := srv.Send(healthy, 1, struct{}{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the healthy client got nothing")
	}
	select {
	case <-cl.Done():
		t.Fatalf("the healthy client closed: %v", cl.Err())
	default:
	}
}

// TestFrameDeadline has one peer send half a frame and then drip a byte at
// a time: it is closed with ErrFrameDeadline. A peer that keeps sending
// whole frames split across writes (each completes) is not.
func TestFrameDeadline(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	const size = 128
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(size), engine.WithFrameDeadline(150*time.Millisecond))...)
	addr := srv.Addr().String()

	drip := dialRaw(t, addr)
	drip.greet(size)
	dripID := ev.idOf(ctx, t, drip)
	steady := dialRaw(t, addr)
	steady.greet(size)
	steadyID := ev.idOf(ctx, t, steady)

	frame, _ := codec.Append(nil, size, 0, map[string]int{"n": 1})
	if _, err := drip.conn.Write(frame[:size/2]); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- ev.reasonFor(context.Background(), t, dripID) }()
	dripping := time.NewTicker(20 * time.Millisecond)
	defer dripping.Stop()
	for i := size / 2; ; i++ {
		select {
		case reason := <-closed:
			if !errors.Is(reason, engine.ErrFrameDeadline) {
				t.Fatalf("the dripping peer closed with %v, want ErrFrameDeadline", reason)
			}
			if i >= size {
				t.Fatal("the frame completed: the test proves nothing")
			}
			// The steady peer, which sent whole frames all along, is open.
			steady.write(`0{"n":2}`)
			if op, obj := steady.read(); op != 0 || string(obj) != `{"n":2}` {
				t.Fatalf("steady peer got %d%s", op, obj)
			}
			if _, ok := srv.Conn(steadyID); !ok {
				t.Fatal("the steady peer was closed")
			}
			return
		case <-dripping.C:
			_, _ = drip.conn.Write(frame[i : i+1])
			// The steady peer sends a frame in two writes, and reads it back.
			_, _ = steady.conn.Write(frame[:size/2])
			_, _ = steady.conn.Write(frame[size/2:])
			steady.read()
		case <-ctx.Done():
			t.Fatal("the dripping peer was never closed")
		}
	}
}

// TestMaxBuffered: many peers under their own outbound cap can still hold
// too much together. With a server-wide cap of 1 MiB, the peer that
// stopped reading and holds the most is closed with ErrSlowConsumer; a
// peer that holds a little is left alone.
func TestMaxBuffered(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMaxBuffered(1<<20, 0),
		engine.WithMaxOutbound(64<<20, engine.SlowClose), engine.WithWriteDeadline(0))...)
	addr := srv.Addr().String()
	big := dialRaw(t, addr)
	big.greet(codec.DefaultMessageSize)
	bigID := ev.idOf(ctx, t, big)
	_ = big.conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	small := dialRaw(t, addr)
	small.greet(codec.DefaultMessageSize)
	smallID := ev.idOf(ctx, t, small)
	sc, _ := srv.Conn(smallID)
	for i := range 16 {
		if err := sc.Send(1, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	bc, _ := srv.Conn(bigID)
	pad := strings.Repeat("x", 900)
	// Far more than the kernel's buffers take for a peer that does not
	// read: what is left waits in gnet's buffer, past the server's cap.
	for i := 0; i < 32<<10; i++ {
		if err := bc.Send(1, map[string]any{"i": i, "pad": pad}); err != nil {
			break // closed: the cap came
		}
	}
	if r := ev.reasonFor(ctx, t, bigID); !errors.Is(r, engine.ErrSlowConsumer) {
		t.Fatalf("the peer holding the most closed with %v, want ErrSlowConsumer", r)
	}
	if _, ok := srv.Conn(smallID); !ok {
		t.Fatal("the peer holding a little was closed too")
	}
}
