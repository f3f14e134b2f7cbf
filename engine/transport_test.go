// This file tests the transport seam with a layer of the test's own: a
// handshake line, then every byte XORed on the wire. The frame code is the
// same as for plain TCP; only the layer knows.

package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

const xorKey = 0x5a

var errBadHello = errors.New("xor layer: bad hello")

// xorLayer expects "HELLO\n" from the peer, answers "OK\n", and then XORs
// every byte both ways.
type xorLayer struct {
	out   func([]byte) error
	ready bool
}

func (x *xorLayer) start(out func([]byte) error, _ func()) error { x.out = out; return nil }

func (x *xorLayer) input(plain, in []byte) ([]byte, int, bool, error) {
	n := 0
	if !x.ready {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			if len(in) > 16 {
				return plain, 0, false, errBadHello
			}
			return plain, 0, false, nil
		}
		if string(in[:i]) != "HELLO" {
			return plain, 0, false, errBadHello
		}
		if err := x.out([]byte("OK\n")); err != nil {
			return plain, 0, false, err
		}
		x.ready, n = true, i+1
	}
	for _, b := range in[n:] {
		plain = append(plain, b^xorKey)
	}
	return plain, len(in), true, nil
}

func (x *xorLayer) stop(error) error { return nil }

func (x *xorLayer) pending() bool { return false }

func (x *xorLayer) output(dst, p []byte) ([]byte, error) {
	for _, b := range p {
		dst = append(dst, b^xorKey)
	}
	return dst, nil
}

// xorPeer is a raw TCP peer that speaks the layer.
type xorPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (p *xorPeer) write(b []byte) {
	p.t.Helper()
	w := make([]byte, len(b))
	for i, c := range b {
		w[i] = c ^ xorKey
	}
	if _, err := p.conn.Write(w); err != nil {
		p.t.Fatal(err)
	}
}

func (p *xorPeer) read(n int) []byte {
	p.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(p.r, b); err != nil {
		p.t.Fatal(err)
	}
	for i := range b {
		b[i] ^= xorKey
	}
	return b
}

func withLayer(newLayer func() layer) Option {
	return sharedOption(func(c *config) { c.newLayer = func(*conn) layer { return newLayer() } })
}

// TestLayer runs a server whose connections carry a layer: nothing is sent
// or dispatched before the handshake; after it the -2 frame, an echo and a
// call cross the layer both ways; a peer whose handshake is wrong is closed
// with the layer's error as the reason, and no connect or disconnect
// callback runs for it.
func TestLayer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	const size = 128
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	connects, disconnects := make(chan uint64, 4), make(chan error, 4)
	srv, err := NewServer(r, WithMessageSize(size), withLayer(func() layer { return &xorLayer{} }),
		WithOnConnect(func(c handler.Conn) { connects <- c.ID() }),
		WithOnDisconnect(func(_ handler.Conn, reason error) { disconnects <- reason }))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	p := &xorPeer{t: t, conn: nc, r: bufio.NewReader(nc)}
	// A frame before the handshake ends is not a frame: the server waits.
	if _, err := nc.Write([]byte("HEL")); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Write([]byte("LO\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := p.r.ReadString('\n'); err != nil || line != "OK\n" {
		t.Fatalf("handshake answer %q, %v", line, err)
	}
	op, obj, err := codec.Decode(p.read(size))
	if err != nil || op != codec.OpMessageSize || string(obj) != `{"message_size":128}` {
		t.Fatalf("first frame %d %s %v", op, obj, err)
	}
	select {
	case <-connects:
	case <-ctx.Done():
		t.Fatal("no connect callback")
	}
	frame, _ := codec.Append(nil, size, 0, map[string]int{"n": 1})
	p.write(frame)
	if got := p.read(size); !bytes.Equal(got, frame) {
		t.Fatalf("echo %q, want %q", got, frame)
	}

	// A bad handshake: closed with the layer's error, no callbacks.
	bad, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	_ = bad.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := bad.Write([]byte("HI THERE\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := bad.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a bad handshake got %d bytes back", n)
	}
	// The good peer is undisturbed.
	p.write(frame)
	if got := p.read(size); !bytes.Equal(got, frame) {
		t.Fatalf("echo after the bad peer %q", got)
	}
	select {
	case id := <-connects:
		t.Fatalf("connect callback for the bad peer (net id %d)", id)
	case reason := <-disconnects:
		t.Fatalf("disconnect callback for the bad peer: %v", reason)
	default:
	}
	if srv.Stats().Conns != 1 {
		t.Errorf("%d connections, want 1", srv.Stats().Conns)
	}
}
