package engine_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Tests of slow consumers, and the helpers the tests of limits share:
// disconnect events, raw frames, numbered streams.

// closeEvent is one server-side disconnect.
type closeEvent struct {
	id     uint64
	reason error
	at     time.Time
}

// connEvents records the server's connect and disconnect callbacks.
type connEvents struct {
	opened chan handler.Conn
	closed chan closeEvent
}

func newConnEvents() *connEvents {
	return &connEvents{opened: make(chan handler.Conn, 256), closed: make(chan closeEvent, 256)}
}

func (e *connEvents) options() []engine.ServerOption {
	return []engine.ServerOption{
		engine.WithOnConnect(func(c handler.Conn) { e.opened <- c }),
		engine.WithOnDisconnect(func(c handler.Conn, r error) { e.closed <- closeEvent{c.ID(), r, time.Now()} }),
	}
}

// next returns the next connection opened.
func (e *connEvents) next(ctx context.Context, t *testing.T) handler.Conn {
	t.Helper()
	select {
	case c := <-e.opened:
		return c
	case <-ctx.Done():
		t.Fatal("timed out waiting for a connection")
		return nil
	}
}

// idOf returns the net id of the server's connection to p, dropping the
// connect events of other connections.
func (e *connEvents) idOf(ctx context.Context, t *testing.T, p *rawPeer) uint64 {
	t.Helper()
	local := p.conn.LocalAddr().String()
	for {
		if c := e.next(ctx, t); c.RemoteAddr() == local {
			return c.ID()
		}
	}
}

// eventFor waits for the disconnect of id; the disconnects of other
// connections are dropped.
func (e *connEvents) eventFor(ctx context.Context, t *testing.T, id uint64) closeEvent {
	t.Helper()
	for {
		select {
		case ev := <-e.closed:
			if ev.id == id {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for the disconnect of %d", id)
			return closeEvent{}
		}
	}
}

// reasonFor waits for the disconnect of id and returns its reason.
func (e *connEvents) reasonFor(ctx context.Context, t *testing.T, id uint64) error {
	t.Helper()
	return e.eventFor(ctx, t, id).reason
}

// rawFrame is a frame read by readFrames, or the error that ended reading.
type rawFrame struct {
	op  codec.Opcode
	obj []byte
	err error
}

// readFrames reads frames of the peer's size in a goroutine until the
// connection fails, the last value carrying the error. The goroutine ends,
// closing the channel, with the test at the latest.
func (p *rawPeer) readFrames() <-chan rawFrame {
	ch := make(chan rawFrame)
	done := p.t.Context().Done()
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, p.size)
			var f rawFrame
			if _, err := io.ReadFull(p.r, buf); err != nil {
				f.err = err
			} else {
				f.op, f.obj, f.err = codec.Decode(buf)
			}
			select {
			case ch <- f:
			case <-done:
				return
			}
			if f.err != nil {
				return
			}
		}
	}()
	return ch
}

// seqFrame is the broadcast payload of the slow-consumer tests.
type seqFrame struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad,omitempty"`
}

// expectSeq reads from frames until it got frame seq on opcode 1, failing
// on anything else.
func expectSeq(ctx context.Context, t *testing.T, frames <-chan rawFrame, seq int) {
	t.Helper()
	select {
	case f := <-frames:
		if f.err != nil {
			t.Fatalf("healthy peer, waiting for frame %d: %v", seq, f.err)
		}
		var m seqFrame
		if f.op != 1 || codec.Unmarshal(f.obj, &m) != nil || m.Seq != seq {
			t.Fatalf("healthy peer: want frame %d, got %d %.60s", seq, f.op, f.obj)
		}
	case <-ctx.Done():
		t.Fatalf("healthy peer: timed out waiting for frame %d", seq)
	}
}

// pushLimit bounds what the slow-consumer tests push before giving up.
const pushLimit = 256 << 20

// TestSlowConsumerClose: a peer that stops reading is closed with
// ErrSlowConsumer once its outbound data passes WithMaxOutbound, whether it
// is fed by SendAll or by Send; sends to it then fail, and a healthy peer
// on the same loop gets every broadcast frame in order.
func TestSlowConsumerClose(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const size = 16 << 10
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(size), engine.WithMaxOutbound(256<<10, engine.SlowClose))...)
	addr := srv.Addr().String()

	stalled := dialRaw(t, addr)
	stalled.greet(size)
	stalledID := ev.next(ctx, t).ID()
	healthy := dialRaw(t, addr)
	healthy.greet(size)
	ev.next(ctx, t)
	frames := healthy.readFrames()

	// Broadcast in batches of 8 frames (128 KiB), each batch read by the
	// healthy peer before the next, so that only the stalled peer's data
	// can pass the limit.
	pad := strings.Repeat("x", size-64)
	seq, pushed := 0, 0
	var reason error
	for reason == nil {
		if pushed > pushLimit {
			t.Fatalf("the stalled peer is still open after %d MiB", pushed>>20)
		}
		for range 8 {
			if err := srv.SendAll(1, seqFrame{Seq: seq, Pad: pad}); err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			expectSeq(ctx, t, frames, seq)
			seq++
			pushed += size
		}
		select {
		case e := <-ev.closed:
			if e.id != stalledID {
				t.Fatalf("connection %d closed: %v", e.id, e.reason)
			}
			reason = e.reason
		default:
		}
	}
	t.Logf("broadcast: stalled peer closed after %d KiB", pushed>>10)
	if !errors.Is(reason, engine.ErrSlowConsumer) {
		t.Fatalf("disconnect reason %v, want ErrSlowConsumer", reason)
	}
	if err := srv.Send(stalledID, 1, seqFrame{Seq: -1}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Fatalf("send to the closed slow consumer: %v", err)
	}
	// The socket is closed too: reading drains what the kernel held, then EOF.
	if _, err := io.Copy(io.Discard, stalled.r); err != nil {
		t.Fatalf("stalled peer: want EOF, got %v", err)
	}
	if err := srv.SendAll(1, seqFrame{Seq: seq}); err != nil {
		t.Fatal(err)
	}
	expectSeq(ctx, t, frames, seq)

	// Unicast: Send in a tight loop. Either the queue check in Send
	// (ErrOutboundFull) or the buffer check on the loop trips first; the
	// reason is ErrSlowConsumer both ways.
	uni := dialRaw(t, addr)
	uni.greet(size)
	uniID := ev.next(ctx, t).ID()
	var err error
	for pushed = 0; err == nil; pushed += size {
		if pushed > pushLimit {
			t.Fatalf("the stalled peer is still open after %d MiB", pushed>>20)
		}
		err = srv.Send(uniID, 1, seqFrame{Seq: pushed, Pad: pad})
	}
	if !errors.Is(err, engine.ErrOutboundFull) && !errors.Is(err, engine.ErrUnknownConn) && !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Send to a slow consumer: %v", err)
	}
	if r := ev.reasonFor(ctx, t, uniID); !errors.Is(r, engine.ErrSlowConsumer) {
		t.Fatalf("unicast: disconnect reason %v, want ErrSlowConsumer", r)
	}
	t.Logf("unicast: Send failed after %d KiB with %v", pushed>>10, err)
	if st := srv.Stats(); st.Dropped != 0 || st.Conns != 1 {
		t.Fatalf("stats %+v, want nothing dropped and one connection", st)
	}
}

// TestSlowConsumerDrop: under SlowDrop a peer that stops reading stays
// open; the frames that do not fit are dropped whole and counted, so once
// it reads again its stream is still in frame: it gets every frame not
// counted as dropped, in order, then new frames.
func TestSlowConsumerDrop(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const size = 16 << 10
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(),
		engine.WithMessageSize(size), engine.WithMaxOutbound(256<<10, engine.SlowDrop), engine.WithWriteDeadline(0))...)
	addr := srv.Addr().String()

	stalled := dialRaw(t, addr)
	stalled.greet(size)
	stalledID := ev.next(ctx, t).ID()
	healthy := dialRaw(t, addr)
	healthy.greet(size)
	ev.next(ctx, t)
	frames := healthy.readFrames()

	pad := strings.Repeat("x", size-64)
	seq := 0
	for srv.Stats().Dropped == 0 {
		if seq*size > pushLimit {
			t.Fatalf("nothing dropped after %d MiB", seq*size>>20)
		}
		for range 8 {
			if err := srv.SendAll(1, seqFrame{Seq: seq, Pad: pad}); err != nil {
				t.Fatalf("SendAll: %v", err)
			}
			expectSeq(ctx, t, frames, seq)
			seq++
		}
	}
	// A few more rounds while the peer stays stalled.
	for range 16 {
		if err := srv.SendAll(1, seqFrame{Seq: seq, Pad: pad}); err != nil {
			t.Fatal(err)
		}
		expectSeq(ctx, t, frames, seq)
		seq++
	}
	// The loop writes a broadcast to the healthy peer before the stalled
	// one: an echo from the healthy peer makes sure the last round is done.
	healthy.write(`7{"sync":1}`)
	select {
	case f := <-frames:
		if f.err != nil || f.op != 7 {
			t.Fatalf("want the echo, got %d %.60s %v", f.op, f.obj, f.err)
		}
	case <-ctx.Done():
		t.Fatal("timed out")
	}
	dropped := srv.Stats().Dropped
	t.Logf("sent %d frames (%d KiB), dropped %d", seq, seq*size>>10, dropped)
	if _, ok := srv.Conn(stalledID); !ok {
		t.Fatal("the slow consumer was closed under SlowDrop")
	}
	select {
	case e := <-ev.closed:
		t.Fatalf("connection %d closed: %v", e.id, e.reason)
	default:
	}

	// The peer reads again: exactly the frames not dropped, in order.
	got := stalled.readFrames()
	last := -1
	for range seq - int(dropped) {
		f := <-got
		var m seqFrame
		if f.err != nil || f.op != 1 || codec.Unmarshal(f.obj, &m) != nil || m.Seq <= last {
			t.Fatalf("after frame %d: got %d %.60s %v", last, f.op, f.obj, f.err)
		}
		last = m.Seq
	}
	if err := srv.Send(stalledID, 2, seqFrame{Seq: seq}); err != nil {
		t.Fatalf("send after the peer caught up: %v", err)
	}
	select {
	case f := <-got:
		if f.err != nil || f.op != 2 {
			t.Fatalf("want the frame sent after catching up, got %d %.60s %v", f.op, f.obj, f.err)
		}
	case <-ctx.Done():
		t.Fatal("timed out")
	}
	if d := srv.Stats().Dropped; d != dropped {
		t.Fatalf("dropped %d, then %d", dropped, d)
	}
}
