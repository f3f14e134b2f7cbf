// This file builds an in-memory pair of WebSocket layers, a client and a
// server past the upgrade, and tests messages both ways, frames cut
// anywhere, close codes and the limit on messages; and the benchmark of
// an echo through them.

package wslayer

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// appendFrameFin is appendFrame with the FIN bit as fin: a fragment.
func (l *Layer) appendFrameFin(dst []byte, op ws.OpCode, fin bool, p []byte) []byte {
	f := l.appendFrame(dst, op, p)
	if !fin {
		f[len(dst)] &^= 0x80
	}
	return f
}

// end is one side of an in-memory WebSocket: its layer, what it wrote,
// the messages it received and the reason it was asked to close with.
type end struct {
	l      *Layer
	out    []byte
	msgs   [][]byte
	closed error
	limit  int
}

func newEnd(client bool, limit int) *end {
	e := &end{limit: limit}
	cfg := &Config{Client: client, Path: "/rpc", Host: "example.com", Subprotocol: "simplerpc", MaxHeader: 8 << 10,
		Timeout: time.Minute}
	e.l = New(cfg, Env{
		Out:   func(b []byte) error { e.out = append(e.out, b...); return nil },
		Wake:  func() {},
		Close: func(err error) { e.closed = err },
		Limit: func() int { return e.limit },
	})
	return e
}

// feed hands e what the other end wrote, as Input would get it: what
// Input leaves is kept for the next feed.
func (e *end) feed(in *[]byte) error {
	n, _, err := e.l.Input(*in, func(m []byte) { e.msgs = append(e.msgs, bytes.Clone(m)) })
	*in = (*in)[n:]
	return err
}

// pairUp returns a client and a server past the upgrade.
func pairUp(t testing.TB, limit int) (*end, *end) {
	t.Helper()
	c, s := newEnd(true, limit), newEnd(false, limit)
	if err := c.l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.feed(&c.out); err != nil || len(c.out) != 0 {
		t.Fatalf("upgrade: %v, %d bytes left", err, len(c.out))
	}
	if !bytes.HasPrefix(s.out, []byte("HTTP/1.1 101 ")) {
		t.Fatalf("response %q", s.out)
	}
	if err := c.feed(&s.out); err != nil || len(s.out) != 0 {
		t.Fatalf("response: %v, %d bytes left", err, len(s.out))
	}
	t.Cleanup(func() { c.l.Stop(io.EOF, false); s.l.Stop(io.EOF, false) })
	return c, s
}

func TestEchoBothWays(t *testing.T) {
	c, s := pairUp(t, 1<<16)
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		m := bytes.Repeat([]byte("x"), n)
		c.out = c.l.AppendMessage(c.out, m)
		if err := s.feed(&c.out); err != nil || len(s.msgs) != 1 || !bytes.Equal(s.msgs[0], m) {
			t.Fatalf("%d bytes to the server: %v, %d messages", n, err, len(s.msgs))
		}
		s.msgs = nil
		s.out = s.l.AppendMessage(s.out, m)
		if err := c.feed(&s.out); err != nil || len(c.msgs) != 1 || !bytes.Equal(c.msgs[0], m) {
			t.Fatalf("%d bytes to the client: %v, %d messages", n, err, len(c.msgs))
		}
		c.msgs = nil
	}
}

func TestPartialFrames(t *testing.T) {
	c, s := pairUp(t, 1<<16)
	wire := c.l.AppendMessage(nil, []byte("hello, world"))
	var in []byte
	for i := range wire {
		in = append(in, wire[i])
		if err := s.feed(&in); err != nil {
			t.Fatal(err)
		}
		if got := len(s.msgs); got != map[bool]int{true: 1, false: 0}[i == len(wire)-1] {
			t.Fatalf("after %d bytes: %d messages", i+1, got)
		}
	}
}

func TestCloseCodes(t *testing.T) {
	for code, want := range map[uint16]bool{1000: true, 1003: true, 1004: false, 1005: false, 1006: false,
		1007: true, 1014: true, 1015: false, 1016: false, 2999: false, 3000: true, 4999: true, 5000: false, 999: false} {
		c, s := pairUp(t, 1<<16)
		c.out = c.l.appendFrame(c.out, 0x8, []byte{byte(code >> 8), byte(code)})
		err := s.feed(&c.out)
		if want {
			if err != nil || s.closed == nil {
				t.Errorf("close %d: %v, closed with %v", code, err, s.closed)
			}
			continue
		}
		if !errors.Is(err, ErrProtocol) || !bytes.Contains(s.out, []byte{0x88, 2, 0x03, 0xea}) {
			t.Errorf("close %d: %v, sent %x, want a close with 1002", code, err, s.out)
		}
	}
}

func TestLimitAndPending(t *testing.T) {
	c, s := pairUp(t, 100)
	c.out = c.l.appendFrameFin(c.out, 0x1, false, bytes.Repeat([]byte("a"), 60))
	if err := s.feed(&c.out); err != nil || !s.l.Pending() {
		t.Fatalf("first fragment: %v, pending %v", err, s.l.Pending())
	}
	c.out = c.l.appendFrameFin(c.out, 0x0, true, bytes.Repeat([]byte("a"), 41))
	if err := s.feed(&c.out); !errors.Is(err, ErrProtocol) || !bytes.Contains(s.out, []byte{0x88, 2, 0x03, 0xf1}) {
		t.Fatalf("over the limit: %v, sent %x, want a close with 1009", err, s.out)
	}
}

// BenchmarkEcho measures a 1 KiB message from a client layer to a server
// layer and back, in memory: the frames' reading and writing, masking
// included, with nothing else.
func BenchmarkEcho(b *testing.B) {
	c, s := pairUp(b, 1<<16)
	m := bytes.Repeat([]byte("x"), 1024)
	var cin, sin []byte
	b.SetBytes(int64(len(m)))
	b.ReportAllocs()
	for b.Loop() {
		sin = c.l.AppendMessage(sin[:0], m)
		n, _, err := s.l.Input(sin, func(p []byte) { cin = s.l.AppendMessage(cin[:0], p) })
		if err != nil || n != len(sin) {
			b.Fatal(err)
		}
		if _, _, err := c.l.Input(cin, func([]byte) {}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAppendServerMessage checks that the message a run of sends to all
// builds once is what each server's layer would have framed itself, and
// that a layer is Writable only until its close frame.
func TestAppendServerMessage(t *testing.T) {
	var c Codec
	for _, binary := range []bool{false, true} {
		l := Resume(&Config{Binary: binary}, Env{Out: func([]byte) error { return nil }}, State{})
		if !l.Writable() {
			t.Fatalf("binary %v: a resumed server's layer is not writable", binary)
		}
		for _, n := range []int{0, 64, 125, 126, 300, 70000} {
			p := bytes.Repeat([]byte{'x'}, n)
			if got, want := c.AppendServerMessage([]byte("a"), p, binary), l.AppendMessage([]byte("a"), p); !bytes.Equal(got, want) {
				t.Errorf("binary %v, %d bytes: %x, want %x", binary, n, got[:min(len(got), 12)], want[:min(len(want), 12)])
			}
		}
		_ = l.Stop(nil, false) // sends the close frame
		if l.Writable() {
			t.Errorf("binary %v: writable after its close frame", binary)
		}
	}
}
