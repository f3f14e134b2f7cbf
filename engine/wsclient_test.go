package engine_test

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// wsTarget is a server for the client tests: ws:// or wss:// at /rpc, with
// the options of the scheme.
type wsTarget struct {
	name  string
	sopts []engine.ServerOption
	copts []engine.ClientOption
	addr  func(*engine.Server) string
}

func wsTargets(t *testing.T) []wsTarget {
	p := newPKI(t)
	return []wsTarget{
		{name: "ws", addr: func(s *engine.Server) string { return "ws://" + s.Addr().String() + "/rpc" }},
		{name: "wss",
			sopts: []engine.ServerOption{engine.WithTLS(p.serverConfig(false))},
			copts: []engine.ClientOption{engine.WithTLS(p.clientConfig(false))},
			addr:  func(s *engine.Server) string { return "wss://" + s.Addr().String() + "/rpc" }},
	}
}

// start starts a server of the target's scheme.
func (w wsTarget) start(t *testing.T, r *handler.Router, opts ...engine.ServerOption) (*engine.Server, string) {
	t.Helper()
	srv := startServerOn(t, w.name+"://127.0.0.1:0/rpc", r, append(append([]engine.ServerOption(nil), w.sopts...), opts...)...)
	return srv, w.addr(srv)
}

// callRouters returns the routers of callBothWays: the server doubles N
// on opcode 3, the client adds one to it on opcode 4.
func callRouters() (server, client *handler.Router) {
	server, client = handler.NewRouter(), handler.NewRouter()
	handler.HandleCall(server, 3, func(c handler.Conn, req struct{ N int }) (struct{ N int }, error) {
		return struct{ N int }{req.N * 2}, nil
	})
	handler.HandleCall(client, 4, func(c handler.Conn, req struct{ N int }) (struct{ N int }, error) {
		return struct{ N int }{req.N + 1}, nil
	})
	return server, client
}

// callBothWays makes 100 calls each way at once between cl and the
// server's connection id, with the routers of callRouters.
func callBothWays(ctx context.Context, t *testing.T, cl *engine.Client, srv *engine.Server, id uint64) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			var resp struct{ N int }
			if err := cl.Call(ctx, 3, struct{ N int }{i}, &resp); err != nil || resp.N != 2*i {
				errs <- fmt.Errorf("client call %d: %v %d", i, err, resp.N)
			}
		}()
		go func() {
			defer wg.Done()
			var resp struct{ N int }
			if err := srv.Call(ctx, id, 4, struct{ N int }{i}, &resp); err != nil || resp.N != i+1 {
				errs <- fmt.Errorf("server call %d: %v %d", i, err, resp.N)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWebSocketClientCalls runs our client against our server over ws://
// and wss://: the size from -2 (a size other than the default), calls both
// ways, many at once, credentials first, pings, a size change, TLS state
// for wss.
func TestWebSocketClientCalls(t *testing.T) {
	for _, w := range wsTargets(t) {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			ids := make(chan uint64, 1)
			sr, cr := callRouters()
			auth := func(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
				if !strings.Contains(string(creds), `"token":"sesame"`) {
					return "", errors.New("bad token")
				}
				return "alice", nil
			}
			srv, addr := w.start(t, sr, engine.WithMessageSize(700), engine.WithAuth(auth, testTimeout),
				engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
			pongs := make(chan struct{}, 1)
			tap := engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
				if op == codec.OpPong {
					select {
					case pongs <- struct{}{}:
					default:
					}
				}
			})
			opts := append([]engine.ClientOption{engine.WithCredentials(map[string]string{"token": "sesame"}),
				engine.WithHeartbeat(20*time.Millisecond, 0), tap}, w.copts...)
			cl, err := engine.Dial(ctx, addr, cr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cl.Close(); <-cl.Done() }()
			waitFor(ctx, t, cl.Ready(), "the -2 frame")
			if cl.MessageSize() != 700 {
				t.Errorf("message size %d, want 700", cl.MessageSize())
			}
			id := <-ids
			if c, ok := srv.Conn(id); !ok || engine.IdentityOf(c) != "alice" {
				t.Errorf("identity: %v", ok)
			}
			callBothWays(ctx, t, cl, srv, id)
			waitFor(ctx, t, pongs, "a pong")
			// A size change: both sides' WebSocket layers follow the -2
			// frames through.
			if err := cl.SetMessageSize(400); err != nil {
				t.Fatal(err)
			}
			big := strings.Repeat("b", 350)
			var resp struct{ N int }
			if err := cl.Call(ctx, 3, struct {
				N int
				S string
			}{21, big}, &resp); err != nil || resp.N != 42 {
				t.Fatalf("call after the size change: %v %d", err, resp.N)
			}
			_, tlsOK := engine.TLSState(cl)
			if tlsOK != (w.name == "wss") {
				t.Errorf("TLSState reports %v", tlsOK)
			}
		})
	}
}

// TestWebSocketClientReconnect drops the client's connection from the
// server: the client reconnects over ws:// and wss://, and a frame sent
// while it is disconnected is held and delivered once, on the new
// connection.
func TestWebSocketClientReconnect(t *testing.T) {
	for _, w := range wsTargets(t) {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			atServer := newRecorder()
			conns := make(chan handler.Conn, 4)
			sr := handler.NewRouter()
			sr.On(2, func(_ handler.Conn, data []byte) error { atServer.add(string(data)); return nil })
			srv, addr := w.start(t, sr, engine.WithOnConnect(func(c handler.Conn) { conns <- c }))
			reconnected := make(chan struct{}, 1)
			dropped := make(chan error, 1)
			opts := append([]engine.ClientOption{
				engine.WithReconnect(time.Millisecond, 5*time.Millisecond, func(handler.Conn) { reconnected <- struct{}{} }),
				engine.WithOnDisconnect(func(_ handler.Conn, err error) {
					select {
					case dropped <- err:
					default:
					}
				})}, w.copts...)
			cl, err := engine.Dial(ctx, addr, handler.NewRouter(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cl.Close(); <-cl.Done() }()
			waitFor(ctx, t, cl.Ready(), "the -2 frame")
			first := <-conns
			if err := cl.Send(2, map[string]int{"seq": 0}); err != nil {
				t.Fatal(err)
			}
			atServer.wait(t, 1)
			_ = first.Close()
			select {
			case <-dropped:
			case <-ctx.Done():
				t.Fatal("no disconnect")
			}
			if err := cl.Send(2, map[string]int{"seq": 1}); err != nil {
				t.Fatalf("send while reconnecting: %v", err)
			}
			waitFor(ctx, t, reconnected, "the reconnection")
			second := <-conns
			if second.ID() == first.ID() {
				t.Fatal("same net id after reconnecting")
			}
			atServer.wait(t, 2)
			// Once, and no more: one more round trip, then count.
			if err := cl.Send(2, map[string]int{"seq": 2}); err != nil {
				t.Fatal(err)
			}
			got := atServer.wait(t, 3)
			if len(got) != 3 || got[1] != `{"seq":1}` || got[2] != `{"seq":2}` {
				t.Fatalf("at the server: %q", got)
			}
			if srv.Len() != 1 {
				t.Errorf("%d connections at the server", srv.Len())
			}
		})
	}
}

// TestWebSocketClientGoAway moves a reconnecting ws:// client from a server
// that goes away (-8) to its successor on the same WebSocket listener.
func TestWebSocketClientGoAway(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ln, lnB := sharedListener(t)
	a, b := whoServer(t, "A"), whoServer(t, "B")
	if err := a.StartOn(ctx, engine.WebSocketListener(ln, "/rpc")); err != nil {
		t.Fatal(err)
	}
	cl, err := engine.Dial(ctx, "ws://"+ln.Addr().String()+"/rpc", handler.NewRouter(),
		engine.WithReconnect(time.Millisecond, 5*time.Millisecond, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	server := func() string {
		var resp map[string]string
		if err := cl.Call(ctx, 2, nil, &resp); err != nil {
			t.Fatal(err)
		}
		return resp["server"]
	}
	if s := server(); s != "A" {
		t.Fatalf("first server %q", s)
	}
	if err := b.StartOn(ctx, engine.WebSocketListener(lnB, "/rpc")); err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	if err := a.GoAway(ctx, "restart"); err != nil {
		t.Fatalf("go away: %v", err)
	}
	if s := server(); s != "B" {
		t.Fatalf("after the go-away: server %q", s)
	}
	select {
	case <-cl.Done():
		t.Fatalf("the client closed: %v", cl.Err())
	default:
	}
}

// TestWebSocketClientForeignServer runs our client against a server
// written with coder/websocket, one goroutine per connection: it sends -2
// first and echoes every message, padded or not, as it came.
func TestWebSocketClientForeignServer(t *testing.T) {
	t.Parallel()
	const size = 300
	sizeFrame := []byte(`-2{"message_size":300}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"simplerpc"}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		// Unpadded: the client pads a message to the size.
		if err := c.Write(ctx, websocket.MessageText, sizeFrame); err != nil {
			return
		}
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(b), "9{") {
				_ = c.Close(4000, "bye")
				return
			}
			if len(b) != size {
				_ = c.Close(websocket.StatusPolicyViolation, fmt.Sprintf("%d bytes", len(b)))
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	defer hs.Close()
	ctx := testContext(t)
	cl, got := echoClient(t, ctx, "ws://"+ln.Addr().String()+"/")
	waitFor(ctx, t, cl.Ready(), "the -2 frame")
	if cl.MessageSize() != size {
		t.Fatalf("message size %d", cl.MessageSize())
	}
	for i := range 50 {
		if err := cl.Send(0, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range got.wait(t, 50) {
		if f != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("echo %d: %q", i, f)
		}
	}
	// A close from the server closes the client, with its code.
	if err := cl.Send(9, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cl.Done():
	case <-ctx.Done():
		t.Fatal("the client did not see the server close")
	}
	if err := cl.Err(); !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "(4000)") {
		t.Fatalf("reason %v", err)
	}
}

// acceptKey is the Sec-WebSocket-Accept of key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// badServer answers every connection with what answer writes, after it
// has read the request.
func badServer(t *testing.T, answer func(c net.Conn, key string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				buf := make([]byte, 4096)
				n := 0
				for !strings.Contains(string(buf[:n]), "\r\n\r\n") {
					k, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += k
				}
				key := ""
				for line := range strings.SplitSeq(string(buf[:n]), "\r\n") {
					if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
						key = strings.TrimSpace(v)
					}
				}
				answer(c, key)
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/rpc"
}

// TestWebSocketClientBadUpgrades: a server that answers the upgrade wrongly
// makes Dial fail with ErrWebSocketHandshake and a reason that says what
// was wrong, never a hang; a right answer split over many packets works.
func TestWebSocketClientBadUpgrades(t *testing.T) {
	t.Parallel()
	ok101 := func(key string) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\nSec-WebSocket-Protocol: simplerpc\r\n\r\n"
	}
	sizeMsg := "\x81\x16" + `-2{"message_size":256}`
	for _, tc := range []struct {
		name   string
		answer func(c net.Conn, key string)
		want   string // in the error; "" for a good answer
	}{
		{"bad accept key", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(strings.Replace(ok101(key), acceptKey(key), acceptKey("x"+key), 1)))
		}, "Sec-WebSocket-Accept"},
		{"400", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		}, "400 Bad Request"},
		{"200", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
		}, "200 OK"},
		{"no upgrade header", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(strings.Replace(ok101(key), "Upgrade: websocket\r\n", "", 1)))
		}, "Upgrade: websocket"},
		{"other subprotocol", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(strings.Replace(ok101(key), "simplerpc", "chat", 1)))
		}, "subprotocol"},
		{"garbage", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("\x16\x03\x01garbage, not HTTP\r\n\r\n"))
		}, "not an HTTP response"},
		{"endless header", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n" + strings.Repeat("X-Pad: yes\r\n", 1000)))
			_, _ = c.Read(make([]byte, 1)) // until the client gives up
		}, "over 8192 bytes"},
		{"close before the answer", func(net.Conn, string) {}, "unexpected EOF"},
		{"masked frame from the server", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(ok101(key) + "\x81\x82abcd" + "xx"))
			_, _ = c.Read(make([]byte, 64))
		}, ""},
		{"split over many packets", func(c net.Conn, key string) {
			b := []byte(ok101(key) + sizeMsg)
			for i := range b {
				if _, err := c.Write(b[i : i+1]); err != nil {
					return
				}
				if tcp, ok := c.(*net.TCPConn); ok {
					_ = tcp.SetNoDelay(true)
				}
			}
			_, _ = c.Read(make([]byte, 1)) // until the client closes
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := badServer(t, tc.answer)
			ctx := testContext(t)
			cl, err := engine.Dial(ctx, addr, handler.NewRouter(), engine.WithDialNoWait())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer cl.Close()
				if tc.name == "masked frame from the server" {
					waitFor(ctx, t, cl.Done(), "the close")
					if !errors.Is(cl.Err(), engine.ErrWebSocket) || !strings.Contains(cl.Err().Error(), "masked server frame") {
						t.Fatalf("reason %v", cl.Err())
					}
					return
				}
				waitFor(ctx, t, cl.Ready(), "the -2 frame")
				if cl.MessageSize() != 256 {
					t.Fatalf("size %d", cl.MessageSize())
				}
				return
			}
			if err == nil {
				cl.Close()
				t.Fatal("dial succeeded")
			}
			if !errors.Is(err, engine.ErrWebSocketHandshake) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dial: %v, want ErrWebSocketHandshake with %q", err, tc.want)
			}
		})
	}
}

// TestWebSocketClientAddresses checks the addresses Dial refuses.
func TestWebSocketClientAddresses(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	for addr, want := range map[string]string{
		"wss://127.0.0.1:1/rpc":    "WithTLS",
		"ws:///rpc":                "want ws://",
		"ws://user@127.0.0.1:1/rp": "want ws://",
	} {
		if _, err := engine.Dial(ctx, addr, handler.NewRouter()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", addr, err, want)
		}
	}
	srv, err := engine.NewServer(echoRouter())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "wss://127.0.0.1:0/rpc"); err == nil || !strings.Contains(err.Error(), "WithTLS") {
		t.Errorf("wss:// without WithTLS: %v", err)
		_ = srv.Shutdown(ctx)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := srv.StartOn(ctx, engine.WebSocketTLSListener(ln, "/rpc")); err == nil || !strings.Contains(err.Error(), "WithTLS") {
		t.Errorf("WebSocketTLSListener without WithTLS: %v", err)
	}
}

// TestWebSocketTLSForeignClient: a coder/websocket client over wss://
// reaches our server's echo, and a TCP client of the same server hears
// its broadcast.
func TestWebSocketTLSForeignClient(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	srv := startServerOn(t, "wss://127.0.0.1:0/rpc", echoRouter(), engine.WithTLS(p.serverConfig(false)))
	ctx := testContext(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}}
	c, _, err := websocket.Dial(ctx, "wss://"+srv.Addr().String()+"/rpc",
		&websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{"simplerpc"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if _, b, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(b), `-2{"message_size":`) {
		t.Fatalf("first message: %v %.30q", err, b)
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`0{"over":"wss"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || !strings.HasPrefix(string(b), `0{"over":"wss"}`) {
		t.Fatalf("echo: %v %.30q", err, b)
	}
}

// TestWebSocketClientSilentServer: a server that never answers the upgrade
// fails the dial at the handshake timeout, and meanwhile the dialer's
// event loop serves another client, over WebSocket too.
func TestWebSocketClientSilentServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	silent := badServer(t, func(c net.Conn, _ string) {
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n")) // and no more
		_, _ = c.Read(make([]byte, 1))
	})
	sr, cr := callRouters()
	srv := startServerOn(t, "ws://127.0.0.1:0/rpc", sr)
	d, err := engine.NewDialer(cr, engine.WithHandshakeTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	failed := make(chan error, 1)
	go func() {
		_, err := d.Dial(ctx, silent)
		failed <- err
	}()
	cl, err := d.Dial(ctx, "ws://"+srv.Addr().String()+"/rpc")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ N int }
	if err := cl.Call(ctx, 3, struct{ N int }{4}, &resp); err != nil || resp.N != 8 {
		t.Fatalf("call beside a silent server: %v %d", err, resp.N)
	}
	err = <-failed
	if !errors.Is(err, engine.ErrWebSocketHandshake) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial of a silent server: %v", err)
	}
}

// readClientFrame reads one small frame a client sent, which must be
// masked, and returns its first byte and unmasked payload.
func readClientFrame(c net.Conn) (byte, []byte, error) {
	var h [6]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 || h[1]&0x7f > 125 {
		return 0, nil, fmt.Errorf("header %x: not a masked small frame", h[:2])
	}
	p := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(c, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= h[2+i%4]
	}
	return h[0], p, nil
}

// TestWebSocketClientControlFrames: the client puts a fragmented -2
// message together around a ping, answers the ping with a masked pong, and
// answers the server's close with the same code, masked, then closes with
// it as the reason.
func TestWebSocketClientControlFrames(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	addr := badServer(t, func(c net.Conn, key string) {
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"
		first, rest := `-2{"message_`, `size":256}`
		msg := resp + "\x01" + string(rune(len(first))) + first + "\x89\x02hi" + "\x80" + string(rune(len(rest))) + rest
		if _, err := c.Write([]byte(msg)); err != nil {
			return
		}
		for _, want := range []byte{0x8a, 0x88} {
			b0, p, err := readClientFrame(c)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- fmt.Sprintf("%x %q", b0, p)
			if want == 0x8a {
				_, _ = c.Write([]byte("\x88\x05\x0f\xa1bye")) // close 4001 "bye"
			}
		}
	})
	ctx := testContext(t)
	cl, err := engine.Dial(ctx, addr, handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(ctx, t, cl.Ready(), "the -2 frame")
	if cl.MessageSize() != 256 {
		t.Fatalf("size %d", cl.MessageSize())
	}
	if pong := <-got; pong != `8a "hi"` {
		t.Fatalf("pong: %s", pong)
	}
	if closing := <-got; closing != `88 "\x0f\xa1"` {
		t.Fatalf("close: %s", closing)
	}
	waitFor(ctx, t, cl.Done(), "the close")
	if err := cl.Err(); !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "(4001)") {
		t.Fatalf("reason %v", err)
	}
}
