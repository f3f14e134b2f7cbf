package engine_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
)

// TestMaxBufferedInboundAtOnce: a peer that sends requests and never
// reads its replies is paused, and gnet keeps reading its socket into
// memory. With a server-wide inbound cap of 1 MiB and the peer sending 16
// MiB (its own cap, WithMaxInbound, is 16 MiB), the server closes it with
// ErrInboundFull as soon as its input passes the cap, not on the next
// sweep: the input held never passes the cap by more than a read or two.
// A healthy peer keeps its echoes throughout.
func TestMaxBufferedInboundAtOnce(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	const limit = 1 << 20
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMaxBuffered(0, limit),
		engine.WithMaxOutbound(64<<10, engine.SlowClose), engine.WithWriteDeadline(0))...)
	if out, in, from := srv.MaxBuffered(); out != 0 || in != limit || from != "WithMaxBuffered" {
		t.Fatalf("MaxBuffered() = %d, %d, %q", out, in, from)
	}
	addr := srv.Addr().String()
	healthy := dialRaw(t, addr)
	healthy.greet(codec.DefaultMessageSize)
	flood := dialRaw(t, addr)
	flood.greet(codec.DefaultMessageSize)
	floodID := ev.idOf(ctx, t, flood)
	_ = flood.conn.(*net.TCPConn).SetReadBuffer(4 << 10)

	frame := []byte(`0{"x":"` + strings.Repeat("y", 900) + `"}`)
	frame = append(frame, strings.Repeat(" ", codec.DefaultMessageSize-len(frame))...)
	chunk := []byte(strings.Repeat(string(frame), 64)) // 64 KiB
	sent := make(chan int, 1)
	go func() {
		n := 0
		for n < 16<<20 {
			if _, err := flood.conn.Write(chunk); err != nil {
				break // closed by the server
			}
			n += len(chunk)
		}
		sent <- n
	}()
	for i := range 20 {
		healthy.write(`3{"i":` + string(rune('0'+i%10)) + `}`)
		if op, _ := healthy.read(); op != 3 {
			t.Fatalf("healthy peer: echo %d came back on opcode %d", i, op)
		}
	}
	if r := ev.reasonFor(ctx, t, floodID); !errors.Is(r, engine.ErrInboundFull) {
		t.Fatalf("the flooding peer closed with %v, want ErrInboundFull", r)
	}
	if n := <-sent; n >= 16<<20 {
		t.Fatalf("the flooding peer wrote all of its %d bytes: never closed", n)
	}
	// gnet reads at most its 64 KiB read buffer per event.
	if peak := engine.HeldInPeak(srv); peak > limit+128<<10 {
		t.Fatalf("paused input peaked at %d bytes, over the %d cap", peak, limit)
	}
	healthy.write(`3{"after":1}`)
	if op, _ := healthy.read(); op != 3 {
		t.Fatal("healthy peer lost its echo")
	}
}
