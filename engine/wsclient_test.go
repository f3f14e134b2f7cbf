// This file tests the WebSocket client against our server and a foreign
// one: calls both ways, reconnection, going away, the addresses it
// refuses.

package engine_test

import (
	"context"
	"crypto/tls"
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
			_, tlsOK := engine.TLSState(cl.Conn())
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
