// Package wsframe writes and reads the WebSocket (RFC 6455) frames of the
// load generators: the client's upgrade request, masked text frames out,
// unmasked frames in. Only what the benchmarks need: no fragmentation, no
// control frames other than close.
package wsframe

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Opcodes of the frames the benchmarks see.
const (
	OpText  = 0x1
	OpClose = 0x8
)

// ErrShort reports a frame not complete in the bytes given.
var ErrShort = errors.New("wsframe: incomplete frame")

// Upgrade sends the HTTP upgrade request for path on nc and reads the
// response up to its blank line, a byte at a time, so that nothing after
// it (the server's first message) is read: the caller may hand nc to an
// event loop.
func Upgrade(nc net.Conn, path string) error {
	var k [16]byte
	_, _ = rand.Read(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + nc.RemoteAddr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(k[:]) + "\r\nSec-WebSocket-Protocol: simplerpc\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		return fmt.Errorf("wsframe: upgrade request: %w", err)
	}
	var resp []byte
	var b [1]byte
	for !strings.HasSuffix(string(resp), "\r\n\r\n") {
		if len(resp) > 4096 {
			return fmt.Errorf("wsframe: upgrade response past 4 KiB")
		}
		if _, err := io.ReadFull(nc, b[:]); err != nil {
			return fmt.Errorf("wsframe: upgrade response: %w", err)
		}
		resp = append(resp, b[0])
	}
	if line, _, _ := strings.Cut(string(resp), "\r\n"); !strings.HasPrefix(line, "HTTP/1.1 101 ") {
		return fmt.Errorf("wsframe: upgrade refused: %q", line)
	}
	return nil
}

// AppendText appends payload as one masked text frame (a client's) with
// mask key key.
func AppendText(dst, payload []byte, key [4]byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|OpText)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, 0x80|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 0x80|127), uint64(n))
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	Mask(dst[start:], key)
	return dst
}

// Mask masks (or unmasks) b in place with key.
func Mask(b []byte, key [4]byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}

// Parse reads the frame at the start of b, a server's (unmasked, though a
// masked one is unmasked in place): its opcode, its payload (within b),
// and its length on the wire. It returns ErrShort when b holds only part
// of it.
func Parse(b []byte) (op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return 0, nil, 0, ErrShort
	}
	if b[0]&0x80 == 0 {
		return 0, nil, 0, errors.New("wsframe: fragmented message")
	}
	op = b[0] & 0x0f
	l, h := int(b[1]&0x7f), 2
	switch l {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0, ErrShort
		}
		l, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0, ErrShort
		}
		l, h = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	masked := b[1]&0x80 != 0
	if masked {
		h += 4
	}
	if len(b) < h+l {
		return 0, nil, 0, ErrShort
	}
	payload = b[h : h+l]
	if masked {
		Mask(payload, [4]byte(b[h-4:h]))
	}
	return op, payload, h + l, nil
}

// Read reads one frame from r, which must not read past it on nc (a
// bufio.Reader the caller keeps, or the connection itself: it reads the
// header, then exactly the payload).
func Read(r io.Reader) (op byte, payload []byte, err error) {
	hdr := make([]byte, 2, 14)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, nil, err
	}
	more := map[byte]int{126: 2, 127: 8}[hdr[1]&0x7f]
	if hdr[1]&0x80 != 0 {
		more += 4
	}
	hdr = hdr[:2+more]
	if _, err := io.ReadFull(r, hdr[2:]); err != nil {
		return 0, nil, err
	}
	l := int(hdr[1] & 0x7f)
	switch l {
	case 126:
		l = int(binary.BigEndian.Uint16(hdr[2:]))
	case 127:
		l = int(binary.BigEndian.Uint64(hdr[2:]))
	}
	if l > 1<<20 {
		return 0, nil, fmt.Errorf("wsframe: a %d-byte frame", l)
	}
	buf := append(hdr, make([]byte, l)...)
	if _, err := io.ReadFull(r, buf[len(hdr):]); err != nil {
		return 0, nil, err
	}
	op, payload, _, err = Parse(buf)
	return op, payload, err
}
