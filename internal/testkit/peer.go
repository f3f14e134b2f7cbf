// This file is the raw protocol peer: frames written and read by hand, to
// test a server or a client against the wire contract (docs/PROTOCOL.md)
// rather than against our own client or server.

package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
)

// Pad returns text padded with spaces to size bytes: a frame as it goes on
// the wire. A text longer than size is returned as it is.
func Pad(text string, size int) []byte {
	b := make([]byte, max(len(text), size))
	copy(b, text)
	for i := len(text); i < len(b); i++ {
		b[i] = ' '
	}
	return b
}

// ReadFrame reads one frame of size bytes from r and decodes it. The error
// is r's, or codec's for a frame that does not decode.
func ReadFrame(r io.Reader, size int) (codec.Opcode, []byte, error) {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	op, obj, err := codec.Decode(buf)
	if err != nil {
		return 0, nil, fmt.Errorf("decode %q: %w", buf, err)
	}
	return op, obj, nil
}

// Peer is a raw protocol peer on one connection (TCP, TLS, a test layer):
// it writes frames padded to Size and reads frames of Size. Greet sets
// Size from the server's -2 frame; a test may set it itself. Its methods
// fail T. It is not safe for concurrent use, except that [Peer.Frames]
// reads on a goroutine of its own while the test writes.
type Peer struct {
	T    testing.TB
	Conn net.Conn
	R    *bufio.Reader // reads Conn
	Size int
}

// NewPeer returns a peer on c, which it closes when the test ends; every
// read and write on c must be done within [Timeout].
func NewPeer(t testing.TB, c net.Conn) *Peer {
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(Timeout))
	return &Peer{T: t, Conn: c, R: bufio.NewReader(c)}
}

// Dial returns a peer connected to addr over TCP.
func Dial(t testing.TB, addr string) *Peer {
	t.Helper()
	return DialFrom(t, "", addr)
}

// DialFrom returns a peer connected to addr over TCP from the loopback
// address src ("" for any).
func DialFrom(t testing.TB, src, addr string) *Peer {
	t.Helper()
	d := net.Dialer{Timeout: Timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return NewPeer(t, c)
}

// Greet reads the server's first frame, the -2 frame of size n, and sets
// Size to n.
func (p *Peer) Greet(n int) {
	p.T.Helper()
	p.Size = n
	op, obj := p.Read()
	if op != codec.OpMessageSize || !strings.Contains(string(obj), `"message_size":`) {
		p.T.Fatalf("first frame: op %d %s", op, obj)
	}
}

// Write writes text padded to Size.
func (p *Peer) Write(text string) {
	p.T.Helper()
	if _, err := p.Conn.Write(Pad(text, p.Size)); err != nil {
		p.T.Fatal(err)
	}
}

// Read reads one frame of Size.
func (p *Peer) Read() (codec.Opcode, []byte) {
	p.T.Helper()
	op, obj, err := ReadFrame(p.R, p.Size)
	if err != nil {
		p.T.Fatalf("read frame: %v", err)
	}
	return op, obj
}

// ReadText reads one frame and returns it without its padding.
func (p *Peer) ReadText() string {
	p.T.Helper()
	op, obj := p.Read()
	return fmt.Sprintf("%d%s", op, obj)
}

// ExpectEOF reads until the other side closes the connection, failing if a
// byte comes first.
func (p *Peer) ExpectEOF() {
	p.T.Helper()
	buf := make([]byte, max(p.Size, 1))
	if n, err := io.ReadFull(p.R, buf); !errors.Is(err, io.EOF) {
		p.T.Fatalf("want EOF, got %v (%q)", err, buf[:n])
	}
}

// Frame is a frame read by [Peer.Frames], or the error that ended reading.
type Frame struct {
	Op  codec.Opcode
	Obj []byte
	Err error
}

// Frames reads frames of Size on a goroutine until the connection fails,
// the last value carrying the error. The goroutine ends, closing the
// channel, with the test at the latest. Size must not change meanwhile.
func (p *Peer) Frames() <-chan Frame {
	ch := make(chan Frame)
	done := p.T.Context().Done()
	size := p.Size
	go func() {
		defer close(ch)
		for {
			var f Frame
			f.Op, f.Obj, f.Err = ReadFrame(p.R, size)
			select {
			case ch <- f:
			case <-done:
				return
			}
			if f.Err != nil {
				return
			}
		}
	}()
	return ch
}
