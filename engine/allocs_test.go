// This file pins the allocations of the hot paths at zero per frame: an
// echo, a send-to-all, a call and a typed handler's dispatch, measured
// over loopback with testing.AllocsPerRun (the whole process, the raw
// peers of the test included, which read and write into buffers of their
// own).

package engine_test

import (
	"encoding/json"
	"io"
	"net"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

const allocSize = 256

// leastAllocs is testing.AllocsPerRun taken five times, the least kept:
// it counts the whole process's allocations, and a goroutine left over
// by an earlier test (a timer of a client it closed), or the runtime's
// own, can allocate during one measurement; a path that allocates does so
// in all five.
func leastAllocs(runs int, f func()) float64 {
	least := testing.AllocsPerRun(runs, f)
	for range 4 {
		least = min(least, testing.AllocsPerRun(runs, f))
	}
	return least
}

// allocPeer is a raw peer that writes and reads whole frames into buffers
// it keeps, so that it allocates nothing itself.
type allocPeer struct {
	t   *testing.T
	c   net.Conn
	buf []byte
}

func dialAlloc(t *testing.T, addr string) *allocPeer {
	t.Helper()
	p := dialRaw(t, addr)
	p.greet(allocSize)
	return &allocPeer{t: t, c: p.conn, buf: make([]byte, allocSize)}
}

// frame pads text to a frame, once, before the measurement.
func allocFrame(t *testing.T, op codec.Opcode, obj string) []byte {
	t.Helper()
	f, err := codec.AppendRaw(nil, allocSize, op, []byte(obj))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (p *allocPeer) write(f []byte) {
	if _, err := p.c.Write(f); err != nil {
		p.t.Error(err)
	}
}

// read reads one frame and checks its first bytes.
func (p *allocPeer) read(prefix string) {
	if _, err := io.ReadFull(p.c, p.buf); err != nil {
		p.t.Error(err)
		return
	}
	if string(p.buf[:len(prefix)]) != prefix {
		p.t.Errorf("got %q, want %q...", p.buf, prefix)
	}
}

type allocArgs struct {
	A int `json:"a"`
}

func TestHotPathsAllocs(t *testing.T) {
	var srv *engine.Server
	typed := make(chan int, 1)
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	r.On(1, func(_ handler.Conn, data []byte) error { return srv.SendAllRaw(1, data) })
	var reply any = &allocArgs{A: 1} // boxed once: the handler's own cost aside
	r.OnCall(2, func(_ handler.Conn, data []byte) (any, error) { return reply, nil })
	handler.Handle(r, 3, func(c handler.Conn, req allocArgs) error {
		typed <- req.A
		return nil
	})
	srv = startServer(t, r, engine.WithMessageSize(allocSize), engine.WithEventLoops(1))
	addr := srv.Addr().String()
	p := dialAlloc(t, addr)

	echo := allocFrame(t, 0, `{"a":1,"s":"some text"}`)
	if n := leastAllocs(200, func() { p.write(echo); p.read(`0{"a":1,"s":"some text"}`) }); n != 0 {
		t.Errorf("echo: %v allocs per frame, want 0", n)
	}

	// A call: what its dispatch adds to encoding the reply with go-json,
	// measured alone.
	encode := leastAllocs(200, func() { _, _ = codec.Marshal(reply) })
	call := allocFrame(t, codec.OpRequest, `{"id": 7, "op": 2, "data": {"a": 1}}`)
	if n := leastAllocs(200, func() { p.write(call); p.read(`-4{"id":7,"data":{"a":1}}`) }); n > encode {
		t.Errorf("call: %v allocs per call, encoding the reply alone %v", n, encode)
	}

	// A typed handler: what its dispatch adds to decoding allocArgs with
	// go-json, measured alone.
	obj := []byte(`{"a":1}`)
	var v allocArgs
	decode := leastAllocs(200, func() { _ = json.Unmarshal(obj, &v) })
	typedFrame := allocFrame(t, 3, `{"a":1}`)
	if n := leastAllocs(200, func() { p.write(typedFrame); <-typed }); n > decode {
		t.Errorf("typed handler: %v allocs per frame, decoding alone %v", n, decode)
	}

	// Send-to-all: what one broadcast allocates must not grow with the
	// connections it reaches.
	perBroadcast := func(conns int) float64 {
		peers := []*allocPeer{p}
		for len(peers) < conns {
			peers = append(peers, dialAlloc(t, addr))
		}
		all := allocFrame(t, 1, `{"a":1}`)
		// Every peer must be registered before the measurement: one
		// broadcast reaches them all.
		p.write(all)
		for _, q := range peers {
			q.read(`1{"a":1}`)
		}
		return leastAllocs(100, func() {
			p.write(all)
			for _, q := range peers {
				q.read(`1{"a":1}`)
			}
		})
	}
	few, many := perBroadcast(2), perBroadcast(12)
	if many > few {
		t.Errorf("send-to-all: %v allocs per broadcast to 12 connections, %v to 2: some per frame", many, few)
	}
	t.Logf("send-to-all: %v allocs per broadcast, whatever the connections", many)
}
