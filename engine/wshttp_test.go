package engine_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestWebSocketHandlerOnServeMux: the endpoint mounted on an application's
// own http.ServeMux beside a page: the page is served by net/http, a
// WebSocket client reaches the server through the handler and echoes, a
// TCP client of the same server sees it in sends to all, and requests the
// handler cannot take are refused with the status that says why.
func TestWebSocketHandlerOnServeMux(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t, echoRouter())
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "the page") })
	mux.Handle("/rpc", srv.WebSocketHandler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	base := "http://" + ln.Addr().String()

	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(page) != "the page" {
		t.Fatalf("page: %q", page)
	}
	resp, err = http.Get(base + "/rpc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("GET /rpc without an upgrade: %d, want 426", resp.StatusCode)
	}

	got := make(chan string, 4)
	r := handler.NewRouter()
	r.On(1, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	wsc, err := engine.Dial(ctx, "ws://"+ln.Addr().String()+"/rpc", r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsc.Close() })
	var echo struct{ N int }
	if err := wsc.Call(ctx, 7, map[string]int{"n": 3}, &echo); err == nil || handler.ReasonOf(err) == "" {
		// echoRouter has no call handler: a failure proves the round trip.
		t.Fatalf("call: %v", err)
	}
	if err := wsc.Send(1, map[string]string{"via": "handler"}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != `{"via":"handler"}` {
		t.Fatalf("echo: %s", s)
	}
	tcp, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	if n := len(srv.Conns()); n != 2 {
		t.Fatalf("%d connections, want the WebSocket one and the TCP one", n)
	}
	if err := srv.SendAll(1, map[string]string{"to": "all"}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != `{"to":"all"}` {
		t.Fatalf("send to all: %s", s)
	}

	// Under net/http's own TLS the connection cannot move: 501.
	tlsSrv := httptest.NewUnstartedServer(srv.WebSocketHandler())
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, tlsSrv.URL+"/rpc", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: false}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err = (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(string(body), "wss://") {
		t.Fatalf("under TLS: %d %q, want 501 naming wss://", resp.StatusCode, body)
	}
}

// TestStartSeveralAddresses: one Start on TCP and ws:// serves both, with
// one set of net ids and sends to all; Addrs tells the ports chosen.
func TestStartSeveralAddresses(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, err := engine.NewServer(echoRouter())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0", "ws://127.0.0.1:0/rpc"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	addrs := srv.Addrs()
	if len(addrs) != 2 || addrs[0].String() != srv.Addr().String() {
		t.Fatalf("Addrs() = %v", addrs)
	}
	got := make(chan string, 4)
	r := handler.NewRouter()
	r.On(1, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	tcp, err := engine.Dial(ctx, addrs[0].String(), r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcp.Close() })
	ws, err := engine.Dial(ctx, "ws://"+addrs[1].String()+"/rpc", r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if cs := srv.Conns(); len(cs) != 2 || cs[0].ID() == cs[1].ID() {
		t.Fatalf("the server's connections: %v, want two with their own net ids", cs)
	}
	if err := srv.SendAll(1, map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if s := <-got; s != `{"n":1}` {
			t.Fatalf("send to all: %s", s)
		}
	}
	// A second address that cannot be listened on leaves none open.
	other, _ := engine.NewServer(echoRouter())
	if err := other.Start(ctx, "127.0.0.1:0", "tcp://"+addrs[0].String()); err == nil {
		other.Close()
		t.Fatal("Start on an address in use succeeded")
	}
}
