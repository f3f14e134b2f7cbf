// This file tests the direct path of SendRaw (sendHanded, direct.go) over
// real sockets: an echo of the object handed is built straight into the
// connection's output over TCP, TLS and WebSocket, from the callback or a
// goroutine it hands the slice to; it never overtakes what is queued
// before it (a send, a send to all, a close, a size change); and senders
// that race for it send every frame once, whole.

package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// noSweep turns off the deadlines the server sweeps for: a sweep is a
// task on the loop, and an echo made while one is queued takes the queue,
// which would make the counts of the direct path vary.
var noSweep = []engine.ServerOption{engine.WithWriteDeadline(0), engine.WithFrameDeadline(0)}

// directFrames returns n distinct opcode-0 frame texts.
func directFrames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`0{"i":%d,"s":"%s"}`, i, strings.Repeat("x", i%50))
	}
	return out
}

// burst writes the frames in one write, padded to p.size.
func (p *rawPeer) burst(frames []string) {
	p.t.Helper()
	var b strings.Builder
	for _, f := range frames {
		b.WriteString(f + strings.Repeat(" ", p.size-len(f)))
	}
	if _, err := p.conn.Write([]byte(b.String())); err != nil {
		p.t.Fatal(err)
	}
}

// expectEchoes reads an echo of each frame, in order, each copies times.
func (p *rawPeer) expectEchoes(frames []string, copies int) {
	p.t.Helper()
	for _, f := range frames {
		for range copies {
			if op, obj := p.read(); op != 0 || string(obj) != f[1:] {
				p.t.Fatalf("got %d %s, want the echo of %s", op, obj, f)
			}
		}
	}
}

// directBurst greets p, a new peer of srv at size 128, sends it the
// frames in one write and checks that every echo comes back, in order,
// built directly.
func directBurst(t *testing.T, srv *engine.Server, p *rawPeer, frames []string) {
	t.Helper()
	p.greet(128)
	before := engine.DirectSends(srv)
	p.burst(frames)
	p.expectEchoes(frames, 1)
	if got := engine.DirectSends(srv) - before; got != uint64(len(frames)) {
		t.Errorf("%d of %d echoes built directly", got, len(frames))
	}
}

// handOff is a router whose opcode-0 callback hands its slice to a
// goroutine that sends it back, and waits for it; with race, the callback
// sends it back too meanwhile.
func handOff(race bool) *handler.Router {
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error {
		var wg sync.WaitGroup
		var err, own error
		wg.Add(1)
		go func() {
			defer wg.Done()
			err = c.SendRaw(0, data)
		}()
		if race {
			own = c.SendRaw(0, data)
		}
		wg.Wait()
		return errors.Join(own, err)
	})
	return r
}

// TestDirectEcho: a burst of echoes over TCP, from the callback and from a
// goroutine it hands the slice to, and over TLS and WebSocket, arrives
// whole and in order, every echo built straight into the output (the
// layers apply as the round writes the output).
func TestDirectEcho(t *testing.T) {
	t.Parallel()
	const n = 64
	frames := directFrames(n)
	for _, tc := range []struct {
		name string
		r    *handler.Router
	}{{"callback", echoRouter()}, {"goroutine", handOff(false)}} {
		t.Run("tcp-"+tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tc.r, append(noSweep, engine.WithMessageSize(128))...)
			directBurst(t, srv, dialRaw(t, srv.Addr().String()), frames)
		})
	}
	t.Run("tls", func(t *testing.T) {
		t.Parallel()
		pk := newPKI(t)
		srv := startTLSServer(t, echoRouter(), pk.serverConfig(false), append(noSweep, engine.WithMessageSize(128))...)
		p, _ := dialTLSRaw(t, srv.Addr().String(), pk.rawConfig())
		directBurst(t, srv, p, frames)
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		srv, _, url := startWS(t, echoRouter(), noSweep...)
		p := dialWS(t, url)
		before := engine.DirectSends(srv)
		for _, f := range frames {
			p.write(websocket.MessageText, f)
		}
		for _, f := range frames {
			if op, obj := p.read(); op != 0 || string(obj) != f[1:] {
				t.Fatalf("got %d %s, want the echo of %s", op, obj, f)
			}
		}
		if got := engine.DirectSends(srv) - before; got != n {
			t.Errorf("%d of %d echoes built directly", got, n)
		}
	})
}

// TestDirectBehindQueued: an echo made after something was queued for the
// connection takes the queue behind it, whoever queued it: a send from a
// goroutine, a send to all, a size change, a close.
func TestDirectBehindQueued(t *testing.T) {
	t.Parallel()
	var srv *engine.Server
	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, data []byte) error { // a goroutine's send first
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Send(9, map[string]string{"from": "goroutine"})
		}()
		wg.Wait()
		return c.SendRaw(1, data)
	})
	r.On(2, func(c handler.Conn, data []byte) error { // a send to all first
		if err := srv.SendAllRaw(9, []byte(`{"to":"all"}`)); err != nil {
			return err
		}
		return c.SendRaw(2, data)
	})
	r.On(3, func(c handler.Conn, data []byte) error { // a size change first
		if err := srv.SetMessageSize(c.ID(), 256); err != nil {
			return err
		}
		return c.SendRaw(3, data)
	})
	r.On(4, func(c handler.Conn, data []byte) error { // a close first: nothing after it goes out
		_ = c.Close()
		return c.SendRaw(4, data)
	})
	srv = startServer(t, r, append(noSweep, engine.WithMessageSize(128))...)
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	expect := func(op codec.Opcode, want string) {
		t.Helper()
		if gotOp, obj := p.read(); gotOp != op || string(obj) != want {
			t.Fatalf("got %d %s, want %d %s", gotOp, obj, op, want)
		}
	}
	before := engine.DirectSends(srv)
	const rounds = 20
	for i := range rounds {
		p.write(fmt.Sprintf(`1{"n":%d}`, i))
		expect(9, `{"from":"goroutine"}`)
		expect(1, fmt.Sprintf(`{"n":%d}`, i))
		p.write(fmt.Sprintf(`2{"n":%d}`, i))
		expect(9, `{"to":"all"}`)
		expect(2, fmt.Sprintf(`{"n":%d}`, i))
	}
	if got := engine.DirectSends(srv) - before; got != 0 {
		t.Errorf("%d echoes built directly ahead of what was queued", got)
	}
	p.write(`3{"n":1}`)
	expect(codec.OpMessageSize, `{"message_size":256}`)
	p.size = 256
	expect(3, `{"n":1}`)
	p.write(`4{"n":1}`)
	p.expectEOF()
}

// TestDirectRace: for every frame, the callback and a goroutine it hands
// the slice to send it back at the same time, racing for the record's
// claim: each frame comes back twice, whole, before the next frame's
// echoes; some are built directly. Run it under -race.
func TestDirectRace(t *testing.T) {
	t.Parallel()
	srv := startServer(t, handOff(true), append(noSweep, engine.WithMessageSize(128))...)
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	before := engine.DirectSends(srv)
	const bursts, n = 10, 32
	for range bursts {
		frames := directFrames(n)
		p.burst(frames)
		p.expectEchoes(frames, 2)
	}
	if got := engine.DirectSends(srv) - before; got == 0 || got > 2*bursts*n {
		t.Errorf("%d of %d echoes built directly", got, 2*bursts*n)
	}
}
