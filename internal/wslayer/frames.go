// This file holds the frames of RFC 6455 §5 after the upgrade, on
// gobwas/ws's header reading and writing and its masking: the frames that
// arrived checked and put together into messages, pings answered, the
// close handshake, and messages framed for the peer.

package wslayer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// sliceReader reads a byte slice, for gobwas/ws's header reader: what it
// has not read tells how long the header was.
type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// sliceWriter appends to a byte slice, for gobwas/ws's header writer.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

// ErrShort is ParseFrame's error for a frame not all in the bytes given.
var ErrShort = errors.New("wslayer: incomplete frame")

// Codec reads and writes frames on gobwas/ws's header reader and writer,
// without allocating: its reader, writer and their buffers are its own.
// The zero value is ready. A Codec is not safe for concurrent use.
type Codec struct {
	rd   sliceReader
	wr   sliceWriter
	hbuf [ws.MaxHeaderSize - 2]byte
	wbuf [ws.MaxHeaderSize]byte
}

// ParseFrame reads the frame at the start of b: its header, its payload
// (within b, as sent: masked if the header says so) and its length on the
// wire. It returns ErrShort when b holds only part of it, and another error
// for a header RFC 6455 forbids (a 64-bit length with its top bit set).
func (c *Codec) ParseFrame(b []byte) (ws.Header, []byte, int, error) {
	h, hl, err := c.readHeader(b)
	if err != nil {
		return h, nil, 0, err
	}
	if int64(len(b)-hl) < h.Length {
		return h, nil, 0, ErrShort
	}
	return h, b[hl : hl+int(h.Length)], hl + int(h.Length), nil
}

// readHeader reads a frame's header from the start of b and returns its
// length, or ErrShort.
func (c *Codec) readHeader(b []byte) (ws.Header, int, error) {
	r := &c.rd
	r.b = b
	h, err := ws.ReadHeaderBuffer(r, c.hbuf[:0])
	n := len(b) - len(r.b)
	r.b = nil
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return h, 0, ErrShort
	case err != nil:
		return h, 0, err
	}
	return h, n, nil
}

// AppendFrame appends a whole, final frame of op carrying p to dst,
// masked with key when masked (a client's: RFC 6455 §5.3 asks for a fresh
// key per frame).
func (c *Codec) AppendFrame(dst []byte, op ws.OpCode, p []byte, masked bool, key [4]byte) []byte {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(p)), Masked: masked, Mask: key}
	w := &c.wr
	w.b = dst
	_ = ws.WriteHeaderBuffer(w, h, c.wbuf[:]) // fails only for a length past 2^63
	k := len(w.b)
	dst = append(w.b, p...)
	w.b = nil
	if masked {
		ws.Cipher(dst[k:], key, 0)
	}
	return dst
}

// read takes the frames in in, calling msg with each complete data
// message, answering pings and the close handshake. It returns how many
// bytes of in it consumed: a frame that is not all there is left, bounded
// by the limit on messages.
func (l *Layer) read(in []byte, msg func([]byte)) (int, error) {
	n := 0
	for n < len(in) {
		if l.peerClosed {
			return len(in), nil
		}
		h, hl, err := l.codec.readHeader(in[n:])
		if errors.Is(err, ErrShort) {
			break
		}
		if err != nil {
			return n, l.fail(ws.StatusProtocolError, err.Error())
		}
		if err := l.check(h); err != nil {
			return n, err
		}
		if int64(len(in)-n-hl) < h.Length {
			break // the rest of the payload is to come
		}
		p := in[n+hl : n+hl+int(h.Length)]
		n += hl + int(h.Length)
		if err := l.frame(h, p, msg); err != nil {
			return n, err
		}
	}
	return n, nil
}

// check refuses a frame header RFC 6455 or the limit on messages forbids,
// before its payload is waited for.
func (l *Layer) check(h ws.Header) error {
	switch {
	case h.Rsv != 0:
		return l.fail(ws.StatusProtocolError, "reserved bits set (no extension was agreed)")
	case !h.Masked && !l.cfg.Client:
		return l.fail(ws.StatusProtocolError, "unmasked client frame")
	case h.Masked && l.cfg.Client:
		return l.fail(ws.StatusProtocolError, "masked server frame")
	case h.OpCode.IsReserved():
		return l.fail(ws.StatusProtocolError, fmt.Sprintf("reserved opcode %#x", byte(h.OpCode)))
	case h.OpCode.IsControl() && (!h.Fin || h.Length > 125):
		return l.fail(ws.StatusProtocolError, "fragmented or long control frame")
	case h.OpCode == ws.OpContinuation && l.msgOp == 0:
		return l.fail(ws.StatusProtocolError, "continuation without a message")
	case (h.OpCode == ws.OpText || h.OpCode == ws.OpBinary) && l.msgOp != 0:
		return l.fail(ws.StatusProtocolError, "new message inside a fragmented one")
	case !h.OpCode.IsControl():
		if limit := l.env.Limit(); int64(len(l.msg))+h.Length > int64(limit) {
			return l.fail(ws.StatusMessageTooBig, fmt.Sprintf("message over the frame size of %d bytes", limit))
		}
	}
	return nil
}

// frame acts on one complete frame; p is its payload, borrowed, masked if
// the header says so (a client's). It unmasks p in place.
func (l *Layer) frame(h ws.Header, p []byte, msg func([]byte)) error {
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		if l.closeSent {
			return nil
		}
		return l.env.Out(l.appendFrame(nil, ws.OpPong, p))
	case ws.OpPong:
		return nil
	case ws.OpClose:
		return l.closeFrame(p)
	}
	if h.OpCode != ws.OpContinuation {
		l.msgOp = h.OpCode
	}
	m := p
	if len(l.msg) > 0 || !h.Fin {
		l.msg = append(l.msg, p...)
		if !h.Fin {
			return nil
		}
		m = l.msg
	}
	op := l.msgOp
	l.msgOp = 0
	l.msg = l.msg[:0]
	if op == ws.OpText && !utf8.Valid(m) {
		return l.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in a text message")
	}
	msg(m)
	return nil
}

// closeFrame answers the peer's close frame (RFC 6455 §5.5.1) with the same
// code, and closes the connection after the messages read before it are
// handled.
func (l *Layer) closeFrame(b []byte) error {
	code := ws.StatusNoStatusRcvd
	switch {
	case len(b) == 1:
		return l.fail(ws.StatusProtocolError, "close frame of 1 byte")
	case len(b) >= 2:
		code = ws.StatusCode(binary.BigEndian.Uint16(b))
		if !ValidCloseCode(code) {
			return l.fail(ws.StatusProtocolError, fmt.Sprintf("close code %d", code))
		}
		if !utf8.Valid(b[2:]) {
			return l.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in the close reason")
		}
	}
	l.peerClosed = true
	reply := ws.StatusNormalClosure
	if len(b) >= 2 {
		reply = code
	}
	l.sendClose(reply)
	l.env.Close(fmt.Errorf("engine: the peer closed the WebSocket (%d): %w", code, io.EOF))
	return nil
}

// ValidCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4): 1000–1003 and 1007–1014 of the protocol's own, 3000–4999
// for libraries and applications. 1004, 1005, 1006 and 1015 are never sent;
// the rest is unassigned. gobwas/ws's CheckCloseFrameData accepts
// 5000–65535, so the check is ours. It is safe for concurrent use.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fail sends a close frame with code and returns the reason to close with.
func (l *Layer) fail(code ws.StatusCode, why string) error {
	l.sendClose(code)
	return fmt.Errorf("%w: %s (close %d)", ErrProtocol, why, code)
}

// sendClose writes a close frame, once.
func (l *Layer) sendClose(code ws.StatusCode) {
	if l.closeSent {
		return
	}
	l.closeSent = true
	_ = l.env.Out(l.appendFrame(nil, ws.OpClose, binary.BigEndian.AppendUint16(nil, uint16(code))))
}

// appendFrame appends a whole, final frame of op carrying p: masked with a
// fresh key on the client's side, as RFC 6455 §5.3 asks, unmasked on the
// server's.
func (l *Layer) appendFrame(dst []byte, op ws.OpCode, p []byte) []byte {
	var key [4]byte
	if l.cfg.Client {
		binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	}
	return l.codec.AppendFrame(dst, op, p, l.cfg.Client, key)
}
