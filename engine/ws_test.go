package engine_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// startWS starts a server with a TCP listener and a WebSocket one at /rpc,
// both on 127.0.0.1:0, and returns the TCP address and the ws:// URL.
func startWS(t *testing.T, r *handler.Router, opts ...engine.ServerOption) (*engine.Server, string, string) {
	t.Helper()
	srv, err := engine.NewServer(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.StartOn(context.Background(), tcp, engine.WebSocketListener(wl, "/rpc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv, tcp.Addr().String(), "ws://" + wl.Addr().String() + "/rpc"
}

// wsPeer is a WebSocket client that reads and writes frames by hand.
type wsPeer struct {
	t    *testing.T
	ctx  context.Context
	c    *websocket.Conn
	size int
}

func dialWS(t *testing.T, url string) *wsPeer {
	t.Helper()
	ctx := testContext(t)
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"simplerpc"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	if c.Subprotocol() != engine.Subprotocol {
		t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	p := &wsPeer{t: t, ctx: ctx, c: c}
	op, obj := p.read()
	if op != codec.OpMessageSize {
		t.Fatalf("first frame: %d %s", op, obj)
	}
	var m struct {
		Size int `json:"message_size"`
	}
	if err := codec.Unmarshal(obj, &m); err != nil {
		t.Fatal(err)
	}
	p.size = m.Size
	return p
}

func (p *wsPeer) read() (codec.Opcode, []byte) {
	p.t.Helper()
	typ, b, err := p.c.Read(p.ctx)
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		p.t.Fatalf("message type %v, want text", typ)
	}
	if p.size != 0 && len(b) != p.size {
		p.t.Fatalf("message of %d bytes, want the frame size %d", len(b), p.size)
	}
	op, obj, err := codec.Decode(b)
	if err != nil {
		p.t.Fatalf("decode %q: %v", b, err)
	}
	return op, obj
}

func (p *wsPeer) write(typ websocket.MessageType, text string) {
	p.t.Helper()
	if err := p.c.Write(p.ctx, typ, []byte(text)); err != nil {
		p.t.Fatal(err)
	}
}

func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter())
	p := dialWS(t, url)
	if p.size != codec.DefaultMessageSize {
		t.Fatalf("size %d", p.size)
	}
	// Unpadded text, padded binary, a fragmented message: each is a frame.
	p.write(websocket.MessageText, `7{"a":1}`)
	padded := `8{"b":"héllo"}`
	p.write(websocket.MessageBinary, padded+strings.Repeat(" ", p.size-len(padded)))
	for _, want := range []string{`{"a":1}`, `{"b":"héllo"}`} {
		if _, obj := p.read(); string(obj) != want {
			t.Fatalf("echo %s, want %s", obj, want)
		}
	}
	// A failure comes back as -1.
	p.write(websocket.MessageText, `5{}`)
	if op, obj := p.read(); op != codec.OpFailure || !strings.Contains(string(obj), "ArgumentMissing") {
		t.Fatalf("failure: %d %s", op, obj)
	}
}

func TestWebSocketCalls(t *testing.T) {
	t.Parallel()
	r := echoRouter()
	r.OnCall(9, func(c handler.Conn, data []byte) (any, error) {
		return map[string]string{"got": string(data)}, nil
	})
	ids := make(chan uint64, 1)
	srv, _, url := startWS(t, r, engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	p := dialWS(t, url)
	id := <-ids

	// Client to server.
	p.write(websocket.MessageText, `-3{"id":1,"op":9,"data":{"x":1}}`)
	if op, obj := p.read(); op != codec.OpReply || string(obj) != `{"id":1,"data":{"got":"{\"x\":1}"}}` {
		t.Fatalf("reply: %d %s", op, obj)
	}

	// Server to client: the peer answers the request by hand.
	done := make(chan error, 1)
	var resp struct {
		Y int `json:"y"`
	}
	go func() { done <- srv.Call(p.ctx, id, 11, map[string]int{"x": 2}, &resp) }()
	op, obj := p.read()
	var req struct {
		ID uint64 `json:"id"`
		Op int    `json:"op"`
	}
	if err := codec.Unmarshal(obj, &req); op != codec.OpRequest || err != nil || req.Op != 11 {
		t.Fatalf("request: %d %s %v", op, obj, err)
	}
	p.write(websocket.MessageText, fmt.Sprintf(`-4{"id":%d,"data":{"y":3}}`, req.ID))
	if err := <-done; err != nil || resp.Y != 3 {
		t.Fatalf("call: %v %+v", err, resp)
	}
}

func TestWebSocketSendAllReachesTCPAndWS(t *testing.T) {
	t.Parallel()
	srv, tcpAddr, url := startWS(t, echoRouter())
	p := dialWS(t, url)
	q := dialRaw(t, tcpAddr)
	q.greet(codec.DefaultMessageSize)
	// Both are registered once each has had an echo.
	p.write(websocket.MessageText, `1{}`)
	p.read()
	q.write(`1{}`)
	q.read()
	if err := srv.SendAll(3, map[string]string{"to": "all"}); err != nil {
		t.Fatal(err)
	}
	if _, obj := p.read(); string(obj) != `{"to":"all"}` {
		t.Fatalf("ws: %s", obj)
	}
	if _, obj := q.read(); string(obj) != `{"to":"all"}` {
		t.Fatalf("tcp: %s", obj)
	}
}

func TestWebSocketSizeChange(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	srv, _, url := startWS(t, echoRouter(), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	p := dialWS(t, url)
	id := <-ids
	if err := srv.SetMessageSize(id, 2048); err != nil {
		t.Fatal(err)
	}
	// The -2 at the old size, then frames at the new one, each a message.
	if op, obj := p.read(); op != codec.OpMessageSize || string(obj) != `{"message_size":2048}` {
		t.Fatalf("announce: %d %s", op, obj)
	}
	p.size = 2048
	p.write(websocket.MessageText, `-2{"message_size":2048}`)
	big := strings.Repeat("x", 1500)
	p.write(websocket.MessageText, `4{"s":"`+big+`"}`)
	if _, obj := p.read(); string(obj) != `{"s":"`+big+`"}` {
		t.Fatalf("echo at 2048: %.40s", obj)
	}
}

func TestWebSocketTooLarge(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter())
	p := dialWS(t, url)
	p.write(websocket.MessageText, strings.Repeat(" ", p.size+1))
	_, _, err := p.c.Read(p.ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("want close 1009, got %v", err)
	}
}

func TestWebSocketServerCloses(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	srv, _, url := startWS(t, echoRouter(), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	p := dialWS(t, url)
	c, _ := srv.Conn(<-ids)
	_ = c.Close()
	_, _, err := p.c.Read(p.ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("want close 1000, got %v", err)
	}
}

// rawWS is a socket that speaks the upgrade and WebSocket frames by hand.
type rawWS struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRawWS(t *testing.T, url string) *rawWS {
	t.Helper()
	addr := strings.TrimPrefix(strings.TrimSuffix(url, "/rpc"), "ws://")
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return &rawWS{t: t, c: c, r: bufio.NewReader(c)}
}

const goodKey = "dGhlIHNhbXBsZSBub25jZQ=="

func upgradeRequest(path, method string, extra ...string) string {
	h := method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

// status writes req and returns the status code of the response, having
// read its head.
func (w *rawWS) status(req string) int {
	w.t.Helper()
	if _, err := io.WriteString(w.c, req); err != nil {
		w.t.Fatal(err)
	}
	resp, err := http.ReadResponse(w.r, nil)
	if err != nil {
		w.t.Fatalf("response: %v", err)
	}
	return resp.StatusCode
}

// frame writes one client frame; masked unless told.
func (w *rawWS) frame(b0 byte, payload []byte, masked bool) {
	w.t.Helper()
	f := []byte{b0}
	mbit := byte(0)
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		f = append(f, mbit|byte(n))
	default:
		f = binary.BigEndian.AppendUint16(append(f, mbit|126), uint16(n))
	}
	p := append([]byte(nil), payload...)
	if masked {
		var key [4]byte
		_, _ = rand.Read(key[:])
		f = append(f, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	if _, err := w.c.Write(append(f, p...)); err != nil {
		w.t.Fatal(err)
	}
}

// next reads one server frame: its first byte and payload.
func (w *rawWS) next() (byte, []byte) {
	w.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		w.t.Fatalf("frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		w.t.Fatal("masked server frame")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		_, _ = io.ReadFull(w.r, b[:])
		n = int(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, _ = io.ReadFull(w.r, b[:])
		n = int(binary.BigEndian.Uint64(b[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.r, p); err != nil {
		w.t.Fatalf("payload: %v", err)
	}
	return h[0], p
}

// expectClose reads frames up to a close frame with code, then the end of
// the connection.
func (w *rawWS) expectClose(code int) {
	w.t.Helper()
	for {
		b0, p := w.next()
		if b0&0x0f != 0x8 {
			continue
		}
		if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != code {
			w.t.Fatalf("close %x, want %d", p, code)
		}
		break
	}
	if _, err := w.r.ReadByte(); !errors.Is(err, io.EOF) {
		w.t.Fatalf("want EOF after close, got %v", err)
	}
}

func TestWebSocketBadHandshakes(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter(), engine.WithWebSocket(engine.WebSocketOrigins("app.example.com")))
	key := "Sec-WebSocket-Key: " + goodKey
	cases := []struct {
		name string
		req  string
		want int
	}{
		{"wrong path", upgradeRequest("/other", "GET", key), 404},
		{"wrong method", upgradeRequest("/rpc", "POST", key), 405},
		{"no upgrade", "GET /rpc HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" + key + "\r\n\r\n", 400},
		{"no key", upgradeRequest("/rpc", "GET"), 400},
		{"bad key", upgradeRequest("/rpc", "GET", "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!!!"), 400},
		{"bad version", strings.Replace(upgradeRequest("/rpc", "GET", key), "Version: 13", "Version: 8", 1), 426},
		{"origin refused", upgradeRequest("/rpc", "GET", key, "Origin: https://evil.example.org"), 403},
		{"header too large", upgradeRequest("/rpc", "GET", key, "X-Big: "+strings.Repeat("a", 9000)), 431},
		{"not HTTP", "\x16\x03\x01 hello\r\n\r\n", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := dialRawWS(t, url)
			if got := w.status(tc.req); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if _, err := w.r.ReadByte(); !errors.Is(err, io.EOF) {
				// Bodies are short; what matters is the close.
				_, err = io.Copy(io.Discard, w.r)
				if err != nil {
					t.Fatalf("want a close: %v", err)
				}
			}
		})
	}
	t.Run("allowed origin, split over many writes", func(t *testing.T) {
		t.Parallel()
		w := dialRawWS(t, url)
		req := upgradeRequest("/rpc", "GET", key, "Origin: https://app.example.com", "Sec-WebSocket-Protocol: chat, simplerpc")
		for i := 0; i < len(req); i += 7 {
			if _, err := io.WriteString(w.c, req[i:min(i+7, len(req))]); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.ReadResponse(w.r, nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Fatalf("accept %q", got)
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "simplerpc" {
			t.Fatalf("protocol %q", got)
		}
	})
}

func TestWebSocketHandshakeTimeout(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter(), engine.WithHandshakeTimeout(50*time.Millisecond))
	w := dialRawWS(t, url)
	_, _ = io.WriteString(w.c, "GET /rpc HTTP/1.1\r\n") // and nothing more
	resp, err := http.ReadResponse(w.r, nil)
	if err != nil || resp.StatusCode != 408 {
		t.Fatalf("want 408, got %v %v", resp, err)
	}
}

// upgraded returns a raw socket past the upgrade and the -2 frame.
func upgraded(t *testing.T, url string) *rawWS {
	t.Helper()
	w := dialRawWS(t, url)
	if got := w.status(upgradeRequest("/rpc", "GET", "Sec-WebSocket-Key: "+goodKey)); got != 101 {
		t.Fatalf("status %d", got)
	}
	if b0, p := w.next(); b0 != 0x81 || !strings.HasPrefix(string(p), `-2{"message_size":1024}`) {
		t.Fatalf("first message %x %.30q", b0, p)
	}
	return w
}

func TestWebSocketBadFrames(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter())
	cases := []struct {
		name string
		send func(w *rawWS)
		code int
	}{
		{"unmasked", func(w *rawWS) { w.frame(0x81, []byte(`1{}`), false) }, 1002},
		{"bad opcode", func(w *rawWS) { w.frame(0x83, []byte(`1{}`), true) }, 1002},
		{"reserved bit", func(w *rawWS) { w.frame(0xc1, []byte(`1{}`), true) }, 1002},
		{"too large", func(w *rawWS) { w.frame(0x81, make([]byte, 1025), true) }, 1009},
		{"too large in fragments", func(w *rawWS) {
			w.frame(0x01, make([]byte, 1000), true)
			w.frame(0x80, make([]byte, 100), true)
		}, 1009},
		{"stray continuation", func(w *rawWS) { w.frame(0x80, []byte(`1{}`), true) }, 1002},
		{"invalid UTF-8", func(w *rawWS) { w.frame(0x81, []byte("1{\"a\":\"\xff\"}"), true) }, 1007},
		{"close", func(w *rawWS) { w.frame(0x88, []byte{0x03, 0xe8}, true) }, 1000},
		{"close with app code", func(w *rawWS) { w.frame(0x88, []byte{0x0f, 0xa0, 'b', 'y', 'e'}, true) }, 4000},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := upgraded(t, url)
			tc.send(w)
			w.expectClose(tc.code)
		})
	}
}

func TestWebSocketControlFrames(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter())
	w := upgraded(t, url)
	// A ping between the fragments of a message: answered at once, and the
	// message still arrives whole.
	w.frame(0x01, []byte(`7{"a":`), true)
	w.frame(0x89, []byte("hi"), true)
	w.frame(0x80, []byte(`2}`), true)
	if b0, p := w.next(); b0 != 0x8a || string(p) != "hi" {
		t.Fatalf("pong %x %q", b0, p)
	}
	if b0, p := w.next(); b0 != 0x81 || !strings.HasPrefix(string(p), `7{"a":2}`) || len(p) != 1024 {
		t.Fatalf("echo %x %.20q (%d bytes)", b0, p, len(p))
	}
	w.frame(0x8a, nil, true) // an unsolicited pong is ignored
	w.frame(0x81, []byte(`3{}`), true)
	if _, p := w.next(); !strings.HasPrefix(string(p), `3{}`) {
		t.Fatalf("echo %.20q", p)
	}
}

func TestWebSocketAddress(t *testing.T) {
	t.Parallel()
	srv := startServerOn(t, "ws://127.0.0.1:0/ws", echoRouter(), engine.WithWebSocket(engine.WebSocketBinary()))
	ctx := testContext(t)
	c, _, err := websocket.Dial(ctx, "ws://"+srv.Addr().String()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	typ, b, err := c.Read(ctx)
	if err != nil || typ != websocket.MessageBinary || !strings.HasPrefix(string(b), "-2{") {
		t.Fatalf("first message: %v %v %.20q", typ, err, b)
	}
	for _, bad := range []string{"ws://127.0.0.1:0/ws?x=1", "ws:///ws"} {
		s, _ := engine.NewServer(echoRouter())
		if err := s.Start(context.Background(), bad); err == nil {
			t.Errorf("%s: no error", bad)
			_ = s.Shutdown(ctx)
		}
	}
}
