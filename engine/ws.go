// This file runs WebSocket (RFC 6455) on the event loop: the server's HTTP
// upgrade read from the bytes the loop holds, then, on both sides, one
// protocol frame per WebSocket message, both ways; the server's listeners
// that speak it and the options that configure it. The client's upgrade is
// in wsclient.go.

package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/simplerpc/simplerpc/codec"
)

// Reasons a WebSocket connection closed, given to the disconnect callback
// (once the connect callback ran) and to the log.
var (
	// ErrWebSocketHandshake: the HTTP upgrade was refused (a wrong path or
	// method, a missing or bad header, an origin not allowed, a request
	// past the header cap), or did not complete within
	// [WithHandshakeTimeout] (the reason then wraps
	// context.DeadlineExceeded). The peer got an HTTP error status.
	ErrWebSocketHandshake = errors.New("engine: WebSocket handshake failed")
	// ErrWebSocket: after the upgrade, the peer broke RFC 6455 (an unmasked
	// or reserved frame, a bad opcode, a message larger than the frame
	// size, invalid UTF-8 in a text message). The peer got a close frame
	// with the matching status code, which the reason names.
	ErrWebSocket = errors.New("engine: WebSocket protocol error")
)

// Subprotocol is the WebSocket subprotocol of simplerpc: the server echoes
// it in the upgrade when the client offers it, and accepts clients that
// offer none.
const Subprotocol = "simplerpc"

// WebSocketOption configures the WebSocket listeners of a server (see
// [WithWebSocket]).
type WebSocketOption interface{ applyWS(*wsConfig) }

type wsOptionFunc func(*wsConfig)

func (f wsOptionFunc) applyWS(c *wsConfig) { f(c) }

// wsConfig is what the WebSocket options set.
type wsConfig struct {
	origins   []string // host patterns; nil: same host or no Origin
	binary    bool     // outbound messages are binary, not text
	maxHeader int      // bytes of the upgrade request
}

func defaultWSConfig() wsConfig { return wsConfig{maxHeader: 8 << 10} }

// WithWebSocket configures the server's WebSocket listeners: those of a
// ws://host:port/path address given to [Server.Start] or [Server.Serve],
// and those [WebSocketListener] wraps for [Server.StartOn]. Without it such
// listeners use the defaults of each [WebSocketOption]. Other listeners are
// not affected: one server may serve TCP and WebSocket clients alike, and a
// send to all reaches both.
//
// After the upgrade every WebSocket message carries exactly one protocol
// frame (docs/PROTOCOL.md §1), the same bytes as on TCP. The server sends
// text messages (see [WebSocketBinary]) and accepts text and binary ones; a
// client may leave out the frame's padding, which the server adds back; a
// message larger than the frame size is refused with close code 1009. A
// request for the upgrade that is not done within [WithHandshakeTimeout]
// closes the connection.
//
// ws:// is plain WebSocket, also on a server with [WithTLS]; wss:// (and
// [WebSocketTLSListener]) is TLS under WebSocket, with the config of
// [WithTLS], which it needs.
func WithWebSocket(opts ...WebSocketOption) ServerOption {
	return serverOption(func(c *config) {
		c.ws = defaultWSConfig()
		for _, o := range opts {
			o.applyWS(&c.ws)
		}
	})
}

// WebSocketOrigins allows browsers from the origins whose host matches one
// of patterns (path.Match syntax, case-insensitive: "example.com",
// "*.example.com", "localhost:*"); the upgrade of any other is refused with
// 403 Forbidden. The default allows only a request whose Origin has the
// host of its Host header, and one with no Origin (not from a browser),
// which guards against cross-site WebSocket hijacking. "*" allows every
// origin. The brackets of an IPv6 host are path.Match's character classes:
// escape them ("\\[::1\\]:8080"), or the pattern matches no origin.
func WebSocketOrigins(patterns ...string) WebSocketOption {
	return wsOptionFunc(func(c *wsConfig) { c.origins = append([]string(nil), patterns...) })
}

// WebSocketBinary makes the server send binary messages instead of text
// ones. Text suits browsers, whose frames then arrive as strings; the JSON
// of a frame is always valid UTF-8. Defaults to text.
func WebSocketBinary() WebSocketOption {
	return wsOptionFunc(func(c *wsConfig) { c.binary = true })
}

// WebSocketMaxHeader caps the bytes of the upgrade request, request line
// and headers: a larger one is refused with 431 Request Header Fields Too
// Large. Defaults to 8 KiB; it must be at least 256.
func WebSocketMaxHeader(n int) WebSocketOption {
	return wsOptionFunc(func(c *wsConfig) { c.maxHeader = n })
}

// WebSocketListener returns ln made a WebSocket listener for
// [Server.StartOn]: the server upgrades its connections at path (such as
// "/rpc") and runs the protocol over WebSocket messages, with the options
// of [WithWebSocket]. The server owns and closes ln as any other.
func WebSocketListener(ln net.Listener, path string) net.Listener {
	if path == "" {
		path = "/"
	}
	return &wsListener{Listener: ln, path: path}
}

// WebSocketTLSListener is [WebSocketListener] for wss://: the server runs
// TLS, with the config of [WithTLS] (which [Server.StartOn] then requires),
// under WebSocket on the connections of ln.
func WebSocketTLSListener(ln net.Listener, path string) net.Listener {
	if path == "" {
		path = "/"
	}
	return &wsListener{Listener: ln, path: path, tls: true}
}

// wsListener is a listener whose connections speak WebSocket.
type wsListener struct {
	net.Listener
	path string
	tls  bool // wss: TLS under the WebSocket
}

// SetDeadline sets the deadline of the listener beneath, so that a
// handover can pause its acceptor as it pauses a TCP one.
func (l *wsListener) SetDeadline(t time.Time) error {
	d, ok := l.Listener.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return fmt.Errorf("engine: cannot set a deadline on a %T", l.Listener)
	}
	return d.SetDeadline(t)
}

// listenAddr opens the listener for one of Start's addresses: ws:// and
// wss:// ones here, the others as listen does.
func (c *config) listenAddr(ctx context.Context, addr string) (net.Listener, error) {
	secure := strings.HasPrefix(addr, "wss://")
	if !secure && !strings.HasPrefix(addr, "ws://") {
		bare, err := c.untls(addr)
		if err != nil {
			return nil, err
		}
		return listen(ctx, bare)
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("engine: address %q: want ws://host:port/path or wss://host:port/path", addr)
	}
	if secure && c.tls == nil {
		return nil, fmt.Errorf("engine: address %q: wss:// needs the WithTLS option", addr)
	}
	ln, err := listen(ctx, "tcp://"+u.Host)
	if err != nil {
		return nil, err
	}
	if secure {
		return WebSocketTLSListener(ln, u.Path), nil
	}
	return WebSocketListener(ln, u.Path), nil
}

// layerFor returns the layer maker of the connections accepted from ln.
func (c *config) layerFor(ln net.Listener) (func(*conn) layer, error) {
	wl, ok := ln.(*wsListener)
	if !ok {
		return c.newLayer, nil
	}
	if wl.tls && c.tls == nil {
		return nil, fmt.Errorf("engine: listener %v: wss (WebSocketTLSListener) needs the WithTLS option", ln.Addr())
	}
	if c.ws.maxHeader == 0 {
		c.ws = defaultWSConfig()
	}
	if c.ws.maxHeader < 256 {
		return nil, invalidOption("WebSocketMaxHeader", "%d (want >= 256)", c.ws.maxHeader)
	}
	for _, p := range c.ws.origins {
		if _, err := path.Match(p, ""); err != nil {
			return nil, invalidOption("WebSocketOrigins", "%q: %v", p, err)
		}
	}
	s := &wsSide{cfg: c.ws, path: wl.path, timeout: c.handshakeTimeout}
	if wl.tls {
		return stacked(c.tls.newLayer, s.newLayer), nil
	}
	return s.newLayer, nil
}

// wsSide is the WebSocket of one listener, or of one client (wsclient.go).
type wsSide struct {
	cfg     wsConfig
	path    string // the request target: the server's path, the client's path and query
	timeout time.Duration
	host    string // client: the Host header
	client  bool   // the client's side: it masks what it sends, the server's frames are not masked
}

func (s *wsSide) newLayer(c *conn) layer { return &wsLayer{s: s, c: c} }

// wsLayer is the WebSocket of one connection. Everything but the
// handshake's timer runs on the loop.
type wsLayer struct {
	s   *wsSide
	c   *conn
	out func([]byte) error // writes wire bytes to the socket
	key string             // client: the Sec-WebSocket-Key sent

	timer   *time.Timer
	expired atomic.Bool // the handshake's deadline passed

	// Loop-only.
	upgraded   bool
	closeSent  bool // a close frame went out: nothing more is written
	peerClosed bool // the peer's close frame arrived: the rest is ignored
	peerCode   ws.StatusCode
	inSize     int       // the frame size of inbound messages, as the -2 frames set it
	outSize    int       // the frame size of outbound frames, as the -2 frames set it
	msg        []byte    // a fragmented message being put together
	msgOp      ws.OpCode // its opcode, 0 for none
	pend       []byte    // an outbound partial frame (the engine writes whole ones)
}

func (l *wsLayer) start(out func([]byte) error, wake func()) error {
	l.out = out
	l.timer = time.AfterFunc(l.s.timeout, func() {
		l.expired.Store(true)
		wake()
	})
	if l.s.client {
		return l.request()
	}
	return nil
}

func (l *wsLayer) input(plain, in []byte) ([]byte, int, bool, error) {
	n := 0
	if !l.upgraded {
		if l.expired.Load() {
			err := fmt.Errorf("%w: not done within %v: %w", ErrWebSocketHandshake, l.s.timeout, context.DeadlineExceeded)
			if l.s.client {
				return plain, 0, false, err
			}
			return plain, 0, false, l.refuse(408, err)
		}
		end := bytes.Index(in, []byte("\r\n\r\n"))
		limit := l.s.cfg.maxHeader
		switch {
		case l.s.client && !bytes.HasPrefix(in, []byte("HTTP/")[:min(len(in), 5)]):
			return plain, 0, false, fmt.Errorf("%w: not an HTTP response: %.40q", ErrWebSocketHandshake, in)
		case end < 0 && len(in) <= limit:
			return plain, 0, false, nil // the rest of the request is to come
		case (end < 0 || end+4 > limit) && l.s.client:
			return plain, 0, false, fmt.Errorf("%w: the server's response is over %d bytes", ErrWebSocketHandshake, limit)
		case end < 0 || end+4 > limit:
			return plain, 0, false, l.refuse(431, fmt.Errorf("%w: the request is over %d bytes (WebSocketMaxHeader)",
				ErrWebSocketHandshake, limit))
		}
		n = end + 4
		if l.s.client {
			if err := l.response(in[:n]); err != nil {
				return plain, n, false, err
			}
			// The sizes come with the server's -2 frame (see check, frame
			// and output).
		} else {
			if err := l.upgrade(in[:n]); err != nil {
				return plain, n, false, err
			}
			l.inSize, l.outSize = l.c.inSize, l.c.outSize
		}
		l.upgraded = true
		l.timer.Stop()
	}
	plain, k, err := l.read(plain, in[n:])
	return plain, n + k, true, err
}

// rw is the in-memory connection gobwas/ws's upgrader reads the request
// from and writes its response to: all the request is there, so it never
// blocks.
type rw struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (c *rw) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *rw) Write(p []byte) (int, error) { return c.w.Write(p) }

// upgrade answers the upgrade request req, whole, and reports why it
// refused it.
func (l *wsLayer) upgrade(req []byte) error {
	s := l.s
	var host, origin []byte
	u := ws.Upgrader{
		ReadBufferSize: s.cfg.maxHeader,
		Protocol:       func(p []byte) bool { return string(p) == Subprotocol },
		OnRequest: func(uri []byte) error {
			p, _, _ := bytes.Cut(uri, []byte("?"))
			if string(p) != s.path {
				return ws.RejectConnectionError(ws.RejectionStatus(404), ws.RejectionReason("no WebSocket at "+string(p)))
			}
			return nil
		},
		OnHost: func(h []byte) error { host = bytes.Clone(h); return nil },
		OnHeader: func(k, v []byte) error {
			if string(k) == "Origin" {
				origin = bytes.Clone(v)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !s.originAllowed(origin, host) {
				return nil, ws.RejectConnectionError(ws.RejectionStatus(403), ws.RejectionReason("origin not allowed"))
			}
			if !validKey(req) {
				return nil, ws.ErrHandshakeBadSecKey
			}
			return nil, nil
		},
	}
	c := &rw{r: bytes.NewReader(req)}
	_, err := u.Upgrade(c)
	if c.w.Len() == 0 && err != nil {
		// A request gobwas/ws could not read as HTTP: it wrote nothing.
		return l.refuse(400, fmt.Errorf("%w: %w", ErrWebSocketHandshake, err))
	}
	if werr := l.out(c.w.Bytes()); werr != nil {
		return werr
	}
	if err != nil {
		code := 0
		var rej *ws.ConnectionRejectedError
		if errors.As(err, &rej) {
			code = rej.StatusCode()
		}
		return fmt.Errorf("%w: %d: %w", ErrWebSocketHandshake, code, err)
	}
	return nil
}

// validKey reports whether the Sec-WebSocket-Key of req is, as RFC 6455
// §4.1 asks, 16 bytes in base64; gobwas/ws checks only its length.
func validKey(req []byte) bool {
	for line := range bytes.SplitSeq(req, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(k)), "Sec-WebSocket-Key") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(v)))
		return err == nil && len(b) == 16
	}
	return false
}

// originAllowed applies the origin check to the request's Origin and Host.
func (s *wsSide) originAllowed(origin, host []byte) bool {
	if len(origin) == 0 {
		return true // not a browser: no cookies to hijack
	}
	u, err := url.Parse(string(origin))
	if err != nil || u.Host == "" {
		return false
	}
	o := strings.ToLower(u.Host)
	if s.cfg.origins == nil {
		return o == strings.ToLower(string(host))
	}
	for _, p := range s.cfg.origins {
		if ok, _ := path.Match(strings.ToLower(p), o); ok || p == "*" {
			return true
		}
	}
	return false
}

// refuse answers the upgrade with an HTTP error status and returns err.
func (l *wsLayer) refuse(code int, err error) error {
	text := map[int]string{400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}[code]
	_ = l.out([]byte("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	return err
}

// read takes the WebSocket frames in in, appending the protocol frame of
// each complete data message to plain, answering pings and the close
// handshake. It returns how many bytes of in it consumed: a frame that is
// not all there stays in gnet's buffer, bounded by the frame size.
func (l *wsLayer) read(plain, in []byte) ([]byte, int, error) {
	n := 0
	for n < len(in) {
		if l.peerClosed {
			return plain, len(in), nil
		}
		h, hl, ok := parseHeader(in[n:])
		if !ok {
			break
		}
		if err := l.check(h); err != nil {
			return plain, n, err
		}
		if int64(len(in)-n-hl) < h.Length {
			break // the rest of the payload is to come
		}
		p := in[n+hl : n+hl+int(h.Length)]
		n += hl + int(h.Length)
		var err error
		if plain, err = l.frame(plain, h, p); err != nil {
			return plain, n, err
		}
	}
	return plain, n, nil
}

// parseHeader reads a frame's header from the start of b (RFC 6455 §5.2).
// It reports false when b does not hold all of it.
func parseHeader(b []byte) (ws.Header, int, bool) {
	var h ws.Header
	if len(b) < 2 {
		return h, 0, false
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n := 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, false
		}
		h.Length, n = int64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return h, 0, false
		}
		v := binary.BigEndian.Uint64(b[2:])
		if v > 1<<62 {
			v = 1 << 62 // refused by check as too large
		}
		h.Length, n = int64(v), 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, false
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, true
}

// check refuses a frame header RFC 6455 or the frame size forbids, before
// its payload is waited for.
func (l *wsLayer) check(h ws.Header) error {
	switch {
	case h.Rsv != 0:
		return l.fail(ws.StatusProtocolError, "reserved bits set (no extension was agreed)")
	case !h.Masked && !l.s.client:
		return l.fail(ws.StatusProtocolError, "unmasked client frame")
	case h.Masked && l.s.client:
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
		limit := l.inSize
		if limit == 0 {
			limit = l.c.side.cfg.maxSize // a client before the server's -2 frame
		}
		if int64(len(l.msg))+h.Length > int64(limit) {
			return l.fail(ws.StatusMessageTooBig, fmt.Sprintf("message over the frame size of %d bytes", limit))
		}
	}
	return nil
}

// frame acts on one complete frame; p is its payload, borrowed, masked if
// the header says so (a client's).
func (l *wsLayer) frame(plain []byte, h ws.Header, p []byte) ([]byte, error) {
	switch h.OpCode {
	case ws.OpPing:
		if l.closeSent {
			return plain, nil
		}
		b := append([]byte(nil), p...)
		unmask(b, h)
		return plain, l.out(l.appendFrame(nil, ws.OpPong, b))
	case ws.OpPong:
		return plain, nil
	case ws.OpClose:
		return plain, l.closeFrame(h, p)
	}
	// A data frame: the whole message goes to plain, unmasked there.
	start := len(plain)
	if h.OpCode != ws.OpContinuation {
		l.msgOp = h.OpCode
	}
	if len(l.msg) > 0 || !h.Fin {
		l.msg = append(l.msg, p...)
		unmask(l.msg[len(l.msg)-len(p):], h)
		if !h.Fin {
			return plain, nil
		}
		plain = append(plain, l.msg...)
		l.msg = l.msg[:0]
	} else {
		plain = append(plain, p...)
		unmask(plain[start:], h)
	}
	op := l.msgOp
	l.msgOp = 0
	m := plain[start:]
	if op == ws.OpText && !utf8.Valid(m) {
		return plain[:start], l.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in a text message")
	}
	if l.inSize == 0 {
		// A client's first message, the server's -2 frame: at the size it
		// announces.
		if sz, ok := sizeOf(m); ok {
			l.inSize = sz
		}
	}
	// The padding the peer may have left out.
	for range l.inSize - len(m) {
		plain = append(plain, ' ')
	}
	if sz, ok := sizeOf(plain[start:]); ok {
		l.inSize = sz
	}
	return plain, nil
}

// closeFrame answers the peer's close frame (RFC 6455 §5.5.1) with the same
// code, and closes the connection after the frames read before it are
// handled.
func (l *wsLayer) closeFrame(h ws.Header, p []byte) error {
	b := append([]byte(nil), p...)
	unmask(b, h)
	code := ws.StatusNoStatusRcvd
	switch {
	case len(b) == 1:
		return l.fail(ws.StatusProtocolError, "close frame of 1 byte")
	case len(b) >= 2:
		code = ws.StatusCode(binary.BigEndian.Uint16(b))
		if !validCloseCode(code) {
			return l.fail(ws.StatusProtocolError, fmt.Sprintf("close code %d", code))
		}
		if !utf8.Valid(b[2:]) {
			return l.fail(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in the close reason")
		}
	}
	l.peerClosed, l.peerCode = true, code
	reply := ws.StatusNormalClosure
	if len(b) >= 2 {
		reply = code
	}
	l.sendClose(reply, "")
	c := l.c
	reason := fmt.Errorf("engine: the peer closed the WebSocket (%d): %w", code, io.EOF)
	_ = c.loop.enqueue(task{kind: taskFunc, fn: func() { c.closeWith(reason) }}, nil)
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4): 1000–1003 and 1007–1014 of the protocol's own, 3000–4999
// for libraries and applications. 1004, 1005, 1006 and 1015 are never sent;
// the rest is unassigned. gobwas/ws's CheckCloseFrameData accepts
// 5000–65535, so the check is ours.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fail sends a close frame with code and returns the reason to close with.
func (l *wsLayer) fail(code ws.StatusCode, why string) error {
	l.sendClose(code, "")
	return fmt.Errorf("%w: %s (close %d)", ErrWebSocket, why, code)
}

// sendClose writes a close frame, once.
func (l *wsLayer) sendClose(code ws.StatusCode, reason string) {
	if l.closeSent {
		return
	}
	l.closeSent = true
	b := binary.BigEndian.AppendUint16(nil, uint16(code))
	_ = l.out(l.appendFrame(nil, ws.OpClose, append(b, reason...)))
}

// appendFrame appends a whole, final frame of op carrying p: masked with a
// fresh key on the client's side, as RFC 6455 §5.3 asks, unmasked on the
// server's.
func (l *wsLayer) appendFrame(dst []byte, op ws.OpCode, p []byte) []byte {
	dst = append(dst, 0x80|byte(op))
	var mask byte
	if l.s.client {
		mask = 0x80
	}
	switch n := len(p); {
	case n < 126:
		dst = append(dst, mask|byte(n))
	case n <= 0xffff:
		dst = binary.BigEndian.AppendUint16(append(dst, mask|126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, mask|127), uint64(n))
	}
	if mask == 0 {
		return append(dst, p...)
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	dst = append(dst, key[:]...)
	k := len(dst)
	dst = append(dst, p...)
	ws.Cipher(dst[k:], key, 0)
	return dst
}

// unmask unmasks the payload p of a frame with header h, in place.
func unmask(p []byte, h ws.Header) {
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
}

// output wraps each frame of p in a message. p is a run of whole frames;
// each is the size the -2 frames before it set, starting from the size in
// force at the upgrade, so a -2 passing through changes the size of the
// frames after it (docs/PROTOCOL.md §3).
func (l *wsLayer) output(dst, p []byte) ([]byte, error) {
	if l.closeSent {
		return dst, nil // nothing after a close frame (RFC 6455 §5.5.1)
	}
	if len(l.pend) > 0 {
		p = append(l.pend, p...)
		l.pend = nil
	}
	op := ws.OpText
	if l.s.cfg.binary {
		op = ws.OpBinary
	}
	if l.outSize == 0 {
		l.outSize = l.c.outSize // a client's: set by the server's -2 frame
	}
	for len(p) > 0 {
		if len(p) < l.outSize {
			l.pend = append([]byte(nil), p...)
			break
		}
		f := p[:l.outSize]
		p = p[l.outSize:]
		dst = l.appendFrame(dst, op, f)
		if sz, ok := sizeOf(f); ok {
			l.outSize = sz
		}
	}
	return dst, nil
}

// sizeOf returns the size a -2 frame announces; only such frames report
// true. It is cheap for all others.
func sizeOf(f []byte) (int, bool) {
	t := bytes.TrimLeft(f, " ")
	if len(t) < 3 || t[0] != '-' || t[1] != '2' || (t[2] != '{' && t[2] != ' ') {
		return 0, false
	}
	op, obj, err := codec.Decode(f)
	if err != nil || op != codec.OpMessageSize {
		return 0, false
	}
	var m struct {
		Size int64 `json:"message_size"`
	}
	if codec.Unmarshal(obj, &m) != nil || m.Size < codec.MinMessageSize || m.Size > codec.MaxMessageSize {
		return 0, false
	}
	return int(m.Size), true
}

// pending reports a fragmented message begun and not finished; a frame
// not all there stays in gnet's buffer, which the engine looks at itself.
func (l *wsLayer) pending() bool { return l.msgOp != 0 && !l.peerClosed }

func (l *wsLayer) stop(err error) error {
	if l.timer != nil {
		l.timer.Stop()
	}
	if !l.upgraded {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the peer closed the connection: %w", ErrWebSocketHandshake, io.ErrUnexpectedEOF)
		}
		return err
	}
	if err == nil && !l.closeSent {
		// The engine closes a sound connection: say so, as RFC 6455 asks.
		// gnet writes it before it closes the socket.
		code := ws.StatusNormalClosure
		if l.c.side.closing.Load() {
			code = ws.StatusGoingAway
		}
		if x := l.c.x.Load(); x != nil && errors.Is(x.closeReason, ErrShutdown) {
			code = ws.StatusGoingAway
		}
		l.sendClose(code, "")
	}
	return err
}
