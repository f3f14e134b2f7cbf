// This file holds the transport seam: the byte stream the frame reader and
// writer use, and the layer (TLS, WebSocket) that may sit between it and
// the socket.

package engine

import (
	"io"

	"github.com/panjf2000/gnet/v2"
)

// wire is a connection's byte stream as the frame reader and writer see
// it: plaintext in, plaintext out. For plain TCP it is gnet's connection
// itself, so the frames are read straight from gnet's buffer and the seam
// costs nothing; with a layer it is a [layered]. Loop only.
type wire interface {
	// InboundBuffered returns the plaintext bytes ready to read.
	InboundBuffered() int
	// Peek returns the next n plaintext bytes (n < 0: all of them),
	// borrowed until the next Discard or the end of the callback.
	Peek(n int) ([]byte, error)
	// Discard drops the next n plaintext bytes.
	Discard(n int) (int, error)
	// Write writes plaintext; what the socket does not take is buffered.
	Write(b []byte) (int, error)
	// OutboundBuffered returns the bytes written and not yet taken by the
	// kernel.
	OutboundBuffered() int
}

// layer is a transport between the socket's bytes and the frames, such as
// TLS or WebSocket: it turns the wire bytes that arrive into plaintext, the
// plaintext the engine writes into wire bytes, and may first need a
// handshake, during which no frame flows. The frame code never knows which
// layer, if any, a connection has. Its methods run on the connection's
// loop, except that wake may be called from any goroutine.
type layer interface {
	// start runs once, when the connection opens. out writes wire bytes to
	// the socket (a client's hello); wake makes the loop call input again
	// soon, for a handshake that makes progress off the loop. An error
	// closes the connection with it as the reason.
	start(out func([]byte) error, wake func()) error
	// input consumes wire bytes from in (borrowed until it returns) and
	// appends the plaintext they carry to plain. It returns the grown
	// plain, how many bytes of in it consumed, and whether the handshake is
	// over. Until it is over, input is also called with no bytes after
	// each wake. An error closes the connection with it as the reason: the
	// layer wraps its own sentinel.
	input(plain, in []byte) (out []byte, n int, ready bool, err error)
	// output appends the wire form of the plaintext p to dst.
	output(dst, p []byte) ([]byte, error)
	// pending reports whether the layer holds part of a unit of its own
	// that the peer has not finished sending: a TLS record, a WebSocket
	// frame or message. The frame deadline covers it (sweep.go).
	pending() bool
	// stop runs once, when the connection closes, with gnet's error (nil
	// for a close the engine asked for, io.EOF when the peer closed). It
	// ends a handshake in progress, may write a last message with out
	// (TLS's close_notify), and returns the error to close with in place
	// of gnet's: a truncated record rather than a plain io.EOF.
	stop(err error) error
}

// layered is the wire of a connection with a layer: plaintext buffered
// from what the layer decoded, written through the layer's output.
type layered struct {
	c     *conn
	gc    gnet.Conn
	l     layer
	pool  *bufPool // the loop's: plain and the output's buffer come from it
	plain []byte   // decoded, not yet read; nil when empty
	off   int      // read offset in plain
	ready bool     // the handshake is over
}

func newLayered(c *conn, l layer, pool *bufPool) *layered {
	return &layered{c: c, gc: c.gc, l: l, pool: pool}
}

// bufPool holds the buffers a loop's layered connections decode into and
// encode through, so that an idle connection holds none: a TLS record
// decodes into 16 KiB, and 10,000 idle TLS connections kept 160 MB of
// empty buffers before. Loop-only.
type bufPool struct{ free [][]byte }

// maxPooled bounds the buffers a loop keeps, and maxPooledCap their size.
const (
	maxPooled    = 16
	maxPooledCap = 256 << 10
)

func (p *bufPool) get() []byte {
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return nil
}

func (p *bufPool) put(b []byte) {
	if cap(b) > 0 && cap(b) <= maxPooledCap && len(p.free) < maxPooled {
		p.free = append(p.free, b[:0])
	}
}

// settle gives plain back to the pool once everything in it was read.
func (w *layered) settle() {
	if w.plain != nil && w.off == len(w.plain) {
		w.pool.put(w.plain)
		w.plain, w.off = nil, 0
	}
}

// pump hands the wire bytes gnet holds to the layer. It reports whether the
// handshake is over. Until it is, the layer is asked even when gnet holds
// nothing: the loop was woken for a handshake that made progress elsewhere.
func (w *layered) pump() (bool, error) {
	in, _ := w.gc.Peek(-1)
	if len(in) == 0 && w.ready {
		return true, nil
	}
	if w.off > 0 {
		// What was read stays read: move the partial frame to the front, so
		// that plain does not grow on a stream whose reads never end on a
		// frame boundary.
		k := copy(w.plain, w.plain[w.off:])
		w.plain, w.off = w.plain[:k], 0
	}
	if w.plain == nil {
		w.plain = w.pool.get()
	}
	plain, n, ready, err := w.l.input(w.plain, in)
	w.plain = plain
	w.settle()
	if n > 0 && !w.c.closed.Load() { // gnet released its buffers when it closed
		_, _ = w.gc.Discard(n)
	}
	if ready {
		w.ready = true
	}
	return w.ready, err
}

// partial reports whether the layer, or gnet's buffer beneath it, holds
// part of what the peer has not finished sending.
func (w *layered) partial() bool { return w.gc.InboundBuffered() > 0 || w.l.pending() }

func (w *layered) InboundBuffered() int { return len(w.plain) - w.off }

func (w *layered) Peek(n int) ([]byte, error) {
	avail := len(w.plain) - w.off
	if n < 0 {
		n = avail
	}
	if n > avail {
		return nil, io.ErrShortBuffer
	}
	return w.plain[w.off : w.off+n], nil
}

func (w *layered) Discard(n int) (int, error) {
	n = min(n, len(w.plain)-w.off)
	w.off += n
	w.settle()
	return n, nil
}

func (w *layered) Write(b []byte) (int, error) {
	out, err := w.l.output(w.pool.get(), b)
	if err != nil {
		return 0, err
	}
	_, err = w.c.wireWrite(out)
	w.pool.put(out)
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

func (w *layered) OutboundBuffered() int { return w.gc.OutboundBuffered() }
