//go:build unix

// This file tests the handover of plain WebSocket (ws://) connections: a
// raw RFC 6455 peer and a client of ours stay connected across it.

package engine_test

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// readNote reads one opcode-3 note from a raw WebSocket peer: a text
// message of the frame size.
func (w *rawWS) readNote(size int) handNote {
	w.t.Helper()
	b0, p := w.next()
	for b0 == 0x8a { // a pong
		b0, p = w.next()
	}
	var n handNote
	if b0 != 0x81 || len(p) != size || !strings.HasPrefix(string(p), "3") || json.Unmarshal(p[1:], &n) != nil {
		w.t.Fatalf("want an opcode-3 note of %d bytes, got %x %.60q", size, b0, p)
	}
	return n
}

// TestHandOverWebSocket hands a raw RFC 6455 peer and a client of ours on
// ws:// from server A to server B: neither sees a close, the client's
// stream of echoes arrives whole and in order, and a message split across
// the handover, as a fragment begun and as a frame half written, arrives
// whole from B.
func TestHandOverWebSocket(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := newHandoverServer(t, "A")
	b := newHandoverServer(t, "B")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnB := dupListener(t, ln)
	if err := a.StartOn(ctx, engine.WebSocketListener(ln, "/rpc")); err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String() + "/rpc"

	// The raw peer joins the room and echoes once.
	p := upgraded(t, url)
	p.frame(0x81, []byte(`1{"seq":0}`), true)
	if n := p.readNote(1024); n.Seq != 0 || n.Server != "A" {
		t.Fatalf("first echo: %+v", n)
	}
	rawID := a.Conns()[0].ID()

	// Our client streams echoes across the handover.
	const total = 2000
	back := make(chan handNote, total)
	cr := handler.NewRouter()
	handler.Handle(cr, 3, func(_ handler.Conn, n handNote) error {
		back <- n
		return nil
	})
	drops := make(chan error, 1)
	cl, err := engine.Dial(ctx, url, cr, engine.WithOnDisconnect(func(_ handler.Conn, err error) {
		select {
		case drops <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	waitFor(ctx, t, cl.Ready(), "the -2 frame")
	sent := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		for i := range total {
			if i == 100 {
				close(started)
			}
			if err := cl.Send(2, handNote{Seq: i}); err != nil {
				sent <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // a steady stream, not one burst
			}
		}
		sent <- nil
	}()
	<-started

	// A fragmented message begun: its first fragment is in A's layer once
	// the ping behind it is answered (RFC 6455 lets control frames come
	// between fragments). Then half a frame of the rest.
	p.frame(0x01, []byte(`2{"seq":`), true)
	p.frame(0x89, []byte("mid"), true)
	if b0, pl := p.next(); b0 != 0x8a || string(pl) != "mid" {
		t.Fatalf("want the pong, got %x %q", b0, pl)
	}
	rest := maskedFrame(0x80, []byte(`50}`))
	if _, err := p.c.Write(rest[:4]); err != nil {
		t.Fatal(err)
	}
	rep, n := handOver(t, ctx, a.Server, b.Server)
	if rep.HandedOver != 2 || rep.GoneAway != 0 || n != 2 {
		t.Fatalf("report %+v, adopted %d: want both WebSocket connections handed over", rep, n)
	}
	if err := b.StartOn(ctx, engine.WebSocketListener(lnB, "/rpc")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.c.Write(rest[4:]); err != nil {
		t.Fatal(err)
	}
	if n := p.readNote(1024); n.Seq != 50 || n.Server != "B" {
		t.Fatalf("the split message: %+v", n)
	}
	for i := 51; i < 60; i++ {
		p.frame(0x81, fmt.Appendf(nil, `2{"seq":%d}`, i), true)
		if n := p.readNote(1024); n.Seq != i || n.Server != "B" {
			t.Fatalf("echo %d after: %+v", i, n)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	fromA, fromB := 0, 0
	for i := range total {
		var n handNote
		select {
		case n = <-back:
		case err := <-drops:
			t.Fatalf("the client was disconnected: %v", err)
		case <-ctx.Done():
			t.Fatalf("%d of %d echoes came back", i, total)
		}
		if n.Seq != i {
			t.Fatalf("echo %d of the client is frame %d: lost, repeated or out of order", i, n.Seq)
		}
		switch {
		case n.Server == "A" && fromB == 0:
			fromA++
		case n.Server == "B":
			fromB++
		default:
			t.Fatalf("echo %d from A after B's", i)
		}
	}
	if fromA == 0 || fromB == 0 {
		t.Fatalf("A echoed %d, B %d: the handover was not in the middle", fromA, fromB)
	}
	select {
	case err := <-drops:
		t.Fatalf("the client was disconnected: %v", err)
	default:
	}
	// The raw peer is in the room on B, under its net id.
	if err := b.Group("room").Send(3, handNote{Seq: 7, Server: "room"}); err != nil {
		t.Fatal(err)
	}
	if n := p.readNote(1024); n.Server != "room" {
		t.Fatalf("group send: %+v", n)
	}
	if _, ok := b.Conn(rawID); !ok {
		t.Fatalf("B has no net id %d", rawID)
	}
	if a.Len() != 0 || b.Len() != 2 || a.disconnects.get() != 0 || b.connects.get() != 0 {
		t.Fatalf("A has %d connections, B %d; A ran %d disconnect callbacks, B %d connect callbacks",
			a.Len(), b.Len(), a.disconnects.get(), b.connects.get())
	}
}

// maskedFrame returns a client frame carrying payload, masked.
func maskedFrame(b0 byte, payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := append([]byte{b0, 0x80 | byte(len(payload))}, key[:]...)
	for i, c := range payload {
		f = append(f, c^key[i%4])
	}
	return f
}
