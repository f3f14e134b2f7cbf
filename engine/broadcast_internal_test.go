// This file tests that sends to all queued in a row go out in one write
// per connection (fanRun, broadcast.go), over TCP and ws://, counting the
// writes rather than timing them.

package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// fanPeer is a raw peer of the test: TCP, or ws:// read frame by frame.
type fanPeer struct {
	nc   net.Conn
	r    *bufio.Reader
	isWS bool
}

// frame reads the next protocol frame of size bytes.
func (p *fanPeer) frame(t *testing.T, size int) []byte {
	t.Helper()
	if p.isWS {
		// A server's frame: unmasked, final text, a 7-bit length.
		var hdr [2]byte
		if _, err := io.ReadFull(p.r, hdr[:]); err != nil {
			t.Fatal(err)
		}
		if hdr[0] != 0x81 || int(hdr[1]) != size {
			t.Fatalf("WebSocket header %x, want 81 %02x", hdr, size)
		}
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		t.Fatal(err)
	}
	return buf
}

// fanServer starts a one-loop server at size on TCP and ws://, with tcp
// and ws raw peers connected; it returns the server, the peers and their
// net ids.
func fanServer(t *testing.T, size, tcp, ws int) (*Server, []*fanPeer, []uint64) {
	t.Helper()
	ids := make(chan uint64, tcp+ws)
	srv, err := NewServer(handler.NewRouter(), WithMessageSize(size), WithEventLoops(1),
		WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.StartOn(context.Background(), ln, WebSocketListener(wln, "/rpc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	var peers []*fanPeer
	var netIDs []uint64
	for i := range tcp + ws {
		p := &fanPeer{isWS: i >= tcp}
		addr := ln.Addr()
		if p.isWS {
			addr = wln.Addr()
		}
		nc, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		p.nc, p.r = nc, bufio.NewReader(nc)
		if p.isWS {
			_, _ = io.WriteString(nc, "GET /rpc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
			if resp, err := http.ReadResponse(p.r, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
		}
		p.frame(t, size) // the -2 frame
		peers = append(peers, p)
		netIDs = append(netIDs, <-ids)
	}
	return srv, peers, netIDs
}

// theLoop returns srv's one loop.
func theLoop(t *testing.T, srv *Server) *loop {
	t.Helper()
	loops := srv.side.eachLoop()
	if len(loops) != 1 {
		t.Fatalf("%d loops, want 1", len(loops))
	}
	return loops[0]
}

// flushesAfter queues sends on l's loop in one round and returns the
// writes of frames that round made, and the WebSocket messages framed.
func flushesAfter(t *testing.T, l *loop, sends func()) (writes, framed int) {
	t.Helper()
	runOnLoop(t, l.conns[0], func() {
		writes, framed = -l.flushes, -l.wsFramed
		sends() // queued behind this task: the next batch of the same round
	})
	runOnLoop(t, l.conns[0], func() {
		// This task may run in the batch of the sends, before the round
		// writes what they built: write it now.
		l.flush()
		writes, framed = writes+l.flushes, framed+l.wsFramed
	})
	return writes, framed
}

func TestSendAllRunOneWritePerConn(t *testing.T) {
	const size, tcp, ws, k = 64, 3, 2, 8
	srv, peers, ids := fanServer(t, size, tcp, ws)
	l := theLoop(t, srv)
	obj := func(n int) []byte { return fmt.Appendf(nil, `{"n":%d}`, n) }

	// k sends to all in a row: one write per connection, not k; the
	// WebSocket messages framed once for both ws:// peers.
	writes, framed := flushesAfter(t, l, func() {
		for n := range k {
			if err := srv.SendAllRaw(3, obj(n)); err != nil {
				t.Error(err)
			}
		}
	})
	if writes != tcp+ws {
		t.Errorf("%d sends to all queued in one round: %d writes, want %d (one per connection)", k, writes, tcp+ws)
	}
	if framed != k {
		t.Errorf("%d sends to all queued in one round to %d ws:// peers: %d WebSocket messages framed, want %d (once per frame)",
			k, ws, framed, k)
	}
	for i, p := range peers {
		for n := range k {
			want, _ := codec.AppendValidated(nil, size, 3, obj(n))
			if got := p.frame(t, size); string(got) != string(want) {
				t.Fatalf("peer %d, frame %d: %q, want %q", i, n, got, want)
			}
		}
	}

	// One of them skips peer 0: it has the others one by one (k-1
	// writes), the rest one write each.
	writes, _ = flushesAfter(t, l, func() {
		for n := range k {
			var err error
			if n == 2 {
				err = srv.SendAllExcept(ids[0], 3, map[string]int{"n": n})
			} else {
				err = srv.SendAllRaw(3, obj(n))
			}
			if err != nil {
				t.Error(err)
			}
		}
	})
	if want := tcp + ws - 1 + k - 1; writes != want {
		t.Errorf("a run with a send that skips one peer: %d writes, want %d", writes, want)
	}
	for i, p := range peers {
		for n := range k {
			if n == 2 && i == 0 {
				continue
			}
			want, _ := codec.AppendValidated(nil, size, 3, obj(n))
			if got := p.frame(t, size); string(got) != string(want) {
				t.Fatalf("peer %d, frame %d: %q, want %q", i, n, got, want)
			}
		}
	}

	// A send to one connection between two sends to all ends the run, so
	// that it keeps its place: peer 0's frames in the order sent.
	c0, err := srv.lookup(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	writes, framed = flushesAfter(t, l, func() {
		_ = srv.SendAllRaw(3, obj(0))
		_ = srv.SendAllRaw(3, obj(1))
		_ = c0.SendRaw(4, obj(2))
		_ = srv.SendAllRaw(3, obj(3))
		_ = srv.SendAllRaw(3, obj(4))
	})
	// Peer 0: the first run written, the send and the second run built
	// into its buffer and flushed: 2 writes. The others: one per run.
	if want := 2 + 2*(tcp+ws-1); writes != want {
		t.Errorf("two runs around a send: %d writes, want %d", writes, want)
	}
	if framed != 4 {
		t.Errorf("two runs of 2 around a send: %d WebSocket messages framed, want 4", framed)
	}
	for n, op := range []codec.Opcode{3, 3, 4, 3, 3} {
		want, _ := codec.AppendValidated(nil, size, op, obj(n))
		if got := peers[0].frame(t, size); string(got) != string(want) {
			t.Fatalf("peer 0, frame %d: %q, want %q", n, got, want)
		}
	}
	// The runs gave back what their sends held against the bound on sends
	// to all a loop has not taken (sharedbound.go).
	if q := l.sharedQueued.Load(); q != 0 {
		t.Errorf("after the runs, %d bytes of sends to all are held as not taken", q)
	}
}
