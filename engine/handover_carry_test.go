//go:build unix

// This file tests the sends a handover carries: a send to all, a group
// send and a send by id made on the old server while it hands over reach
// every connection exactly once, in order, moved or not.

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// seqNote is what the sender sends: its sequence number, -1 for the last.
type seqNote struct {
	Seq int `json:"seq"`
}

// TestHandOverCarriesSends: a goroutine of the server sends to all (op 4),
// to a group (op 5) and to one net id (op 6), paced by what the peers
// got, on A until A says its handover has ended, then on B, while A hands
// N raw peers over.
// Every peer gets every sequence number of each exactly once and in
// order: what A sent after a peer moved was carried to B and written
// there first. A send A cannot carry (ErrOutboundFull: the sender
// outpaces the handover) went nowhere and is made again.
func TestHandOverCarriesSends(t *testing.T) {
	t.Run("tcp", func(t *testing.T) { testHandOverCarries(t, false) })
	t.Run("ws", func(t *testing.T) { testHandOverCarries(t, true) })
}

// testHandOverCarries runs TestHandOverCarriesSends with raw TCP peers, or
// raw WebSocket peers on ws:// (the carried frames then go through the
// WebSocket layer the successor resumed).
func testHandOverCarries(t *testing.T, ws bool) {
	t.Parallel()
	ctx := testContext(t)
	a := newHandoverServer(t, "A", engine.WithEventLoops(2))
	// B says when it adopts its first connection: its own sender starts.
	adopting := make(chan struct{})
	var once sync.Once
	b := newHandoverServer(t, "B", engine.WithEventLoops(2), engine.WithHandover(nil, func(handler.Conn, []byte) error {
		once.Do(func() { close(adopting) })
		return nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ws {
		err = a.StartOn(ctx, engine.WebSocketListener(ln, "/rpc"))
	} else {
		err = a.StartOn(ctx, ln)
	}
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	// Each peer's frames, read from a goroutine: a frame's 1024 bytes.
	readers := make([]func() ([]byte, error), n)
	for i := range readers {
		if ws {
			w := upgraded(t, "ws://"+ln.Addr().String()+"/rpc")
			if i%2 == 0 {
				w.frame(0x81, []byte(`1{"seq":0}`), true) // joins the room
				w.readNote(1024)
			}
			readers[i] = func() ([]byte, error) { return serverMessage(w.r) }
			continue
		}
		p := dialRaw(t, ln.Addr().String())
		p.greet(1024)
		if i%2 == 0 {
			p.write(`1{"seq":0}`) // joins the room
			p.readNote()
		}
		readers[i] = func() ([]byte, error) {
			buf := make([]byte, 1024)
			_, err := io.ReadFull(p.r, buf)
			return buf, err
		}
	}
	for deadline := time.Now().Add(testTimeout); a.Len() != n || a.Group("room").Len() != n/2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections on A", a.Len(), n)
		}
	}
	target := a.Conns()[0].ID() // gets the sends by id

	// Each peer reads until the last send to all, counting what it got.
	type got struct {
		i    int
		seqs map[codec.Opcode][]int
		err  error
	}
	results := make(chan got, n)
	// The senders are paced by what the peers got, not by a clock: each
	// sends its next sequence number once every peer got the one
	// paceWindow before, so that a slow machine is not sent more than its
	// loops write.
	const paceWindow = 8
	var paceMu sync.Mutex
	paced := sync.NewCond(&paceMu)
	gotSeq := map[codec.Opcode][]int{4: make([]int, n), 7: make([]int, n)} // each peer's next sequence number
	pace := func(op codec.Opcode, seq int) {
		paceMu.Lock()
		defer paceMu.Unlock()
		for ctx.Err() == nil && slices.Min(gotSeq[op]) < seq-paceWindow {
			paced.Wait()
		}
	}
	context.AfterFunc(ctx, func() { paceMu.Lock(); paced.Broadcast(); paceMu.Unlock() })
	for i, read := range readers {
		go func() {
			g := got{i: i, seqs: map[codec.Opcode][]int{}}
			finals := 0 // A's sender's last (op 4) and B's (op 7)
			for {
				buf, err := read()
				if err != nil {
					g.err = err
					break
				}
				op, obj, err := codec.Decode(buf)
				if err != nil {
					g.err = fmt.Errorf("decode %q: %w", buf, err)
					break
				}
				var s seqNote
				if err := codec.Unmarshal(obj, &s); err != nil {
					g.err = err
					break
				}
				if s.Seq == -1 {
					if finals++; finals == 2 {
						break
					}
					continue
				}
				g.seqs[op] = append(g.seqs[op], s.Seq)
				if op == 4 || op == 7 {
					paceMu.Lock()
					gotSeq[op][i] = s.Seq + 1
					paced.Broadcast()
					paceMu.Unlock()
				}
			}
			results <- g
		}()
	}

	// The sender: paced by the peers, on A until A says its handover ended
	// (ErrHandedOver), then, once the handover is over, on B.
	handed := make(chan struct{})
	started := make(chan struct{})
	sent := make(chan int, 1)
	senderErr := make(chan error, 1)
	go func() {
		srv, onB := a.Server, 0
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		sends := []func(*engine.Server, int) error{
			func(s *engine.Server, seq int) error { return s.Group("room").Send(5, seqNote{seq}) },
			func(s *engine.Server, seq int) error { return s.Send(target, 6, seqNote{seq}) },
			func(s *engine.Server, seq int) error { return s.SendAll(4, seqNote{seq}) },
		}
		send := func(seq int) error {
			for _, f := range sends {
				err := f(srv, seq)
				for errors.Is(err, engine.ErrOutboundFull) {
					// A carries as much as it may: this send went
					// nowhere; again on the next tick.
					<-tick.C
					err = f(srv, seq)
				}
				if errors.Is(err, engine.ErrHandedOver) && srv == a.Server {
					// A's handover is ending: this send and what follows
					// go from B, once the handover is over.
					<-handed
					srv = b.Server
					err = f(srv, seq)
				}
				if err != nil {
					return err
				}
			}
			return nil
		}
		seq := 0
		for ; onB < 50; seq++ {
			if seq == 50 {
				close(started)
			}
			pace(4, seq)
			if err := send(seq); err != nil {
				senderErr <- fmt.Errorf("send %d: %w", seq, err)
				return
			}
			if srv == b.Server {
				onB++
			}
		}
		if err := srv.SendAll(4, seqNote{-1}); err != nil {
			senderErr <- err
			return
		}
		sent <- seq
	}()
	// B's own sender: to all on op 7, from its first adoption on, while the
	// others still move; then 20 more. Those adopted later get what it sent
	// before, once, first.
	bSent := make(chan int, 1)
	go func() {
		<-adopting
		seq, after := 0, 0
		for ; after < 20; seq++ {
			pace(7, seq)
			select {
			case <-handed:
				after++
			default:
			}
			if err := b.SendAll(7, seqNote{seq}); err != nil {
				senderErr <- fmt.Errorf("B's send %d: %w", seq, err)
				return
			}
		}
		if err := b.SendAll(7, seqNote{-1}); err != nil {
			senderErr <- err
			return
		}
		bSent <- seq
	}()
	<-started
	rep, got2 := handOver(t, ctx, a.Server, b.Server)
	if rep.HandedOver != n || got2 != n {
		t.Fatalf("report %+v, adopted %d", rep, got2)
	}
	close(handed)
	var total, bTotal int
	for total == 0 || bTotal == 0 {
		select {
		case total = <-sent:
		case bTotal = <-bSent:
		case err := <-senderErr:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	for range n {
		var g got
		select {
		case g = <-results:
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		if g.err != nil {
			t.Fatalf("a peer: %v", g.err)
		}
		check := func(op codec.Opcode, want int) {
			s := g.seqs[op]
			if len(s) != want {
				t.Fatalf("peer %d: opcode %d: %d frames, want %d: %v", g.i, op, len(s), want, s)
			}
			for i, v := range s {
				if v != i {
					t.Fatalf("opcode %d: frame %d is sequence %d: lost, repeated or out of order", op, i, v)
				}
			}
		}
		check(4, total)
		check(7, bTotal)
		if len(g.seqs[5]) > 0 {
			check(5, total)
		}
		if len(g.seqs[6]) > 0 {
			check(6, total)
		}
	}
}

// serverMessage reads one unfragmented server message (a text frame of
// under 64 KiB) and returns its payload; from any goroutine.
func serverMessage(r io.Reader) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	switch {
	case h[0] != 0x81 || h[1]&0x80 != 0 || n == 127:
		return nil, fmt.Errorf("unexpected frame header %x", h[:2])
	case n == 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return nil, err
		}
		n = int(h[2])<<8 | int(h[3])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, err
}

// TestHandOverCarriesSendAtTheEnd: a send by id queued on the loop while
// its connection is moving (here from the save hook) and run only once
// the handover is ending is still carried: the peer gets it, then what the
// successor sends it, and the send that returned nil is not lost.
func TestHandOverCarriesSendAtTheEnd(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	var once sync.Once
	sendErr := make(chan error, 1)
	a := newHandoverServer(t, "A", engine.WithEventLoops(1), engine.WithHandover(func(c handler.Conn) ([]byte, error) {
		once.Do(func() {
			err := engine.HoldLoopUntilHandoverEnds(c)
			if err == nil {
				err = engine.ServerOf(c).Send(c.ID(), 6, seqNote{Seq: 1})
			}
			sendErr <- err
		})
		return nil, nil
	}, nil))
	b := newHandoverServer(t, "B")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.StartOn(ctx, ln); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, ln.Addr().String())
	p.greet(1024)
	p.write(`2{"seq":0}`)
	if n := p.readNote(); n.Server != "A" {
		t.Fatalf("echo before: %+v", n)
	}
	id := a.Conns()[0].ID()
	if rep, _ := handOver(t, ctx, a.Server, b.Server); rep.HandedOver != 1 {
		t.Fatalf("handed over %d, want 1", rep.HandedOver)
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("the send during the move: %v", err)
	}
	if err := b.Send(id, 7, seqNote{Seq: 2}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []codec.Opcode{6, 7} {
		op, obj := p.read()
		if op != want {
			t.Fatalf("got op %d %s, want op %d: the send A queued as its handover ended was lost", op, obj, want)
		}
	}
}
