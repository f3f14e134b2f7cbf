// This file drives a page that logs in with the JavaScript client's
// credentials, in headless Chromium, against a server that requires
// authentication: the identity, frames and a call sent while the server
// is down arriving after the login on the restarted server, and a bad
// token stopping the client.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/simplerpc/simplerpc/clients/js"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// loginPage connects to the WebSocket endpoint in its query (ws) with the
// token in its query (token) and keeps what happens in window.log; its
// body's data-state is open, reconnecting or stopped.
const loginPage = `<!doctype html>
<meta charset="utf-8">
<title>login</title>
<body data-state="connecting">
<script type="module">
import { Client } from '/js/simplerpc.js';
const q = new URLSearchParams(location.search);
const log = window.log = { identities: [], got: [], failures: [], reply: null, error: null };
const state = (s) => { document.body.dataset.state = s; };
window.rpc = new Client(q.get('ws'), {
  backoffMin: 20, backoffMax: 200,
  credentials: () => ({ token: q.get('token') }),
  onOpen: (c) => { log.identities.push(c.identity); state('open'); },
  onClose: (c, err) => {
    if (!c.closed) return state('reconnecting');
    log.error = { reason: err.reason, message: err.message };
    state('stopped');
  },
});
rpc.on(-1, (f) => log.failures.push(f));
rpc.on(7, (d) => log.got.push(d));
</script>
`

// loginServer is a server that requires authentication: {"token":
// "good:NAME"} logs in as NAME. It echoes frames on 7 as {"identity": ID,
// "data": DATA}, and call 1 returns the same.
type loginServer struct {
	srv    *engine.Server
	tokens *tokenCounts
}

// tokenCounts counts the authentications per token, of every server.
type tokenCounts struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

// newLoginServer returns a server for a page served on page.
func newLoginServer(t *testing.T, page net.Addr, tokens *tokenCounts) *loginServer {
	t.Helper()
	ls := &loginServer{tokens: tokens}
	r := handler.NewRouter()
	echo := func(c handler.Conn, data []byte) any {
		return struct {
			Identity string          `json:"identity"`
			Data     json.RawMessage `json:"data"`
		}{engine.IdentityOf(c), append(json.RawMessage(nil), data...)}
	}
	r.On(7, func(c handler.Conn, data []byte) error { return c.Send(7, echo(c, data)) })
	r.OnCall(1, func(c handler.Conn, data []byte) (any, error) { return echo(c, data), nil })
	auth := func(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
		var v struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(creds, &v)
		tokens.mu.Lock()
		tokens.n[v.Token]++
		tokens.mu.Unlock()
		if name, ok := strings.CutPrefix(v.Token, "good:"); ok && name != "" {
			return name, nil
		}
		return "", errors.New("unknown token")
	}
	srv, err := engine.NewServer(r,
		engine.WithWebSocket(engine.WebSocketOrigins(pageOrigins(page)...)),
		engine.WithAuth(auth, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ls.srv = srv
	return ls
}

// authentications returns how many times token was presented.
func (tc *tokenCounts) authentications(token string) int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.n[token]
}

// pageLog is the page's window.log.
type pageLog struct {
	Identities []string          `json:"identities"`
	Got        []json.RawMessage `json:"got"`
	Failures   []json.RawMessage `json:"failures"`
	Reply      json.RawMessage   `json:"reply"`
	Error      *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"error"`
}

// log returns the page's log.
func (s *browserSession) log() pageLog {
	s.t.Helper()
	text, err := chromedp.Run(s.ctx, chromedp.Evaluate[string](`JSON.stringify(window.log)`))
	if err != nil {
		s.t.Fatalf("%s: reading the page's log: %v", s.who, err)
	}
	var l pageLog
	if err := json.Unmarshal([]byte(text), &l); err != nil {
		s.t.Fatalf("%s: the page's log %q: %v", s.who, text, err)
	}
	return l
}

// TestBrowserLogin: a page logs in with credentials, keeps sending while
// the server restarts, and logs in again: what it sent while the server
// was down arrives after the login, none of it refused; a page with a bad
// token stops, with the server's reason, after one attempt.
func TestBrowserLogin(t *testing.T) {
	browser := newBrowser(t) // first: it fails the test at once without Chromium
	ctx, cancel := context.WithTimeout(browser, 3*time.Minute)
	defer cancel()

	var lc net.ListenConfig
	pageLn, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /js/", http.StripPrefix("/js/", http.FileServerFS(js.FS())))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(loginPage))
	})
	page := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = page.Serve(pageLn) }()
	t.Cleanup(func() { _ = page.Close() })

	tokens := &tokenCounts{n: map[string]int{}}
	wsLn, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr := wsLn.Addr().String()
	first := newLoginServer(t, pageLn.Addr(), tokens)
	if err := first.srv.StartOn(context.Background(), engine.WebSocketListener(wsLn, "/rpc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.srv.Shutdown(context.Background()) })

	pageURL := func(token string) string {
		return "http://" + pageLn.Addr().String() + "/?" + url.Values{"ws": {"ws://" + wsAddr + "/rpc"}, "token": {token}}.Encode()
	}
	open := func(who, token string) *browserSession {
		tab, stop := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
		t.Cleanup(stop)
		s := &browserSession{t: t, who: who, ctx: tab, stop: stop}
		s.do("open the page", chromedp.EmulateViewport(viewW, viewH), chromedp.Navigate(pageURL(token)))
		return s
	}

	erin := open("erin", "good:erin")
	erin.until("logged in", `document.body.dataset.state === 'open'`)
	if l := erin.log(); !slices.Equal(l.Identities, []string{"erin"}) {
		t.Fatalf("identities %q, want [erin]", l.Identities)
	}

	// The server goes; the page sends while it is down: held.
	if err := first.srv.Shutdown(ctx); err != nil && !errors.Is(err, engine.ErrServerClosed) {
		t.Fatal(err)
	}
	erin.until("the page knows the server went", `document.body.dataset.state === 'reconnecting'`)
	const sent = 5
	erin.do("send while the server is down", chromedp.Evaluate[chromedp.Void](`
		for (let n = 0; n < `+strconv.Itoa(sent)+`; n++) rpc.send(7, { n });
		rpc.call(1, { held: true }).then((r) => { log.reply = r; }, (e) => { log.reply = { error: e.reason }; });
	`))

	// A new server on the same port: the page logs in again, then what it
	// held goes out.
	wsLn, err = lc.Listen(ctx, "tcp", wsAddr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", wsAddr, err)
	}
	again := newLoginServer(t, pageLn.Addr(), tokens)
	if err := again.srv.StartOn(context.Background(), engine.WebSocketListener(wsLn, "/rpc")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.srv.Shutdown(context.Background()) })
	erin.until("logged in again, and everything held answered",
		`log.identities.length === 2 && log.got.length === `+strconv.Itoa(sent)+` && log.reply !== null`)
	l := erin.log()
	if !slices.Equal(l.Identities, []string{"erin", "erin"}) {
		t.Errorf("identities %q, want [erin erin]", l.Identities)
	}
	for n, got := range l.Got {
		want := `{"identity":"erin","data":{"n":` + strconv.Itoa(n) + `}}`
		if string(got) != want {
			t.Errorf("frame %d of %d came back as %s, want %s", n, sent, got, want)
		}
	}
	if want := `{"identity":"erin","data":{"held":true}}`; string(l.Reply) != want {
		t.Errorf("the held call: %s, want %s", l.Reply, want)
	}
	if len(l.Failures) != 0 {
		t.Errorf("failures on the page: %s", l.Failures)
	}

	// A bad token: refused once, and the client stops.
	mallory := open("mallory", "stolen")
	mallory.until("stopped", `document.body.dataset.state === 'stopped'`)
	ml := mallory.log()
	if ml.Error == nil || ml.Error.Reason != engine.ReasonUnauthorized {
		t.Errorf("the refused page's error: %+v, want reason %s", ml.Error, engine.ReasonUnauthorized)
	}
	if len(ml.Identities) != 0 {
		t.Errorf("the refused page logged in as %q", ml.Identities)
	}
	stopped, err := chromedp.Run(mallory.ctx, chromedp.Evaluate[bool](`rpc.closed && rpc.timer === null`))
	if err != nil || !stopped {
		t.Errorf("the refused client is not stopped (closed, no reconnection scheduled): %v %v", stopped, err)
	}
	if n := tokens.authentications("stolen"); n != 1 {
		t.Errorf("the bad token was presented %d times, want 1", n)
	}
}
