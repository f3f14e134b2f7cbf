// This file drives the page in headless Chromium: two browser sessions
// and the example's Go client in one room, messages in every direction,
// typed failures on the page, and a screenshot of what a person sees.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotEnv names a directory where TestBrowser also saves its
// screenshot, to look at it after the test's temporary directory is gone.
const screenshotEnv = "CHAT_SCREENSHOT_DIR"

// The viewport of the sessions, and so the size of the screenshot.
const viewW, viewH = 1280, 800

// chromium returns the path of Debian's chromium, or fails the test with
// the line that installs it: the test never skips.
func chromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("headless Chromium is required and missing (%v): install it with "+
			"`apt-get update && apt-get install -y --no-install-recommends chromium` (.ci/run does)", err)
	}
	return path
}

// newBrowser starts one headless Chromium for the test; the cleanup stops
// it and waits for it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.DisableGPU,
		chromedp.WindowSize(viewW, viewH),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// The first action starts the browser; no timeout on it, which would
	// stop the browser when it expired (chromedp.Run's doc).
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return browser
}

// browserSession is one browser session: a tab in a browser context of its own
// (cookies and storage apart), as a second person's browser would be.
type browserSession struct {
	t    *testing.T
	who  string
	ctx  context.Context
	stop context.CancelFunc
}

// openSession opens the page in a new session of browser, within the
// test's time bound ctx.
func openSession(t *testing.T, ctx context.Context, who, url string) *browserSession {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	s := &browserSession{t: t, who: who, ctx: tab, stop: cancel}
	s.do("open the page",
		chromedp.EmulateViewport(viewW, viewH),
		chromedp.Navigate(url),
	)
	s.until("connected", `document.querySelector('#status').dataset.state === 'connected'`)
	return s
}

// do runs steps, or fails the test with what the page shows.
func (s *browserSession) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	if err := chromedp.Do(s.ctx, steps...); err != nil {
		s.t.Fatalf("%s: %s: %v\nthe page shows:\n%s", s.who, what, err, s.text())
	}
}

// until waits for the JavaScript expression cond to be true, for up to a
// minute: a loaded machine may be slow, the page is never wrong for long.
func (s *browserSession) until(what, cond string) {
	s.t.Helper()
	s.do("wait until "+what, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(time.Minute)))
}

// text returns the page's visible text, for failure messages.
func (s *browserSession) text() string {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return text
}

// submit sets the input sel to value and clicks the button that submits
// its form, as a person would.
func (s *browserSession) submit(sel, value, button string) {
	s.t.Helper()
	s.do("submit "+value+" in "+sel,
		chromedp.SetValue(chromedp.CSS(sel), value),
		chromedp.Click(chromedp.CSS(button)),
	)
}

// say sends text to the current room.
func (s *browserSession) say(text string) {
	s.t.Helper()
	s.submit("#text", text, `#compose button[type=submit]`)
}

// shows waits until the element sel's text contains want.
func (s *browserSession) shows(sel, want string) {
	s.t.Helper()
	s.until(sel+" shows "+want, "(document.querySelector("+jsString(sel)+")?.innerText ?? '').includes("+jsString(want)+")")
}

// failed waits until the page shows a failure with reason.
func (s *browserSession) failed(reason string) {
	s.t.Helper()
	s.until("the failure "+reason+" shows", "document.querySelector("+jsString(`#failures li[data-reason="`+reason+`"]`)+") !== null")
}

// jsString returns s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s) // a string always encodes
	return string(b)
}

// transcript collects output and lets a test wait for a line of it.
type transcript struct {
	mu      sync.Mutex // guards b
	b       strings.Builder
	changed chan struct{} // a token after each write
}

func newTranscript() *transcript { return &transcript{changed: make(chan struct{}, 1)} }

func (tr *transcript) Write(p []byte) (int, error) {
	tr.mu.Lock()
	tr.b.Write(p)
	tr.mu.Unlock()
	select {
	case tr.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (tr *transcript) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.b.String()
}

// waitFor waits until the output contains want.
func (tr *transcript) waitFor(t *testing.T, want string) {
	t.Helper()
	tr.waitForRE(t, regexp.MustCompile(regexp.QuoteMeta(want)))
}

// TestBrowser: alice and carol in two browser sessions and bob, the
// example's Go client over TCP, in the lobby. Each message reaches the
// other two (browser to browser, browser to Go, Go to browsers), typed
// failures show on the page, and the screenshot shows the conversation.
func TestBrowser(t *testing.T) {
	browser := newBrowser(t) // first: it fails the test at once without Chromium
	srvOut := newTranscript()
	srv := startChat(t, srvOut)
	ctx, cancel := context.WithTimeout(browser, 4*time.Minute)
	defer cancel()

	alice := openSession(t, ctx, "alice", srv.url())
	alice.submit("#name", "alice", "#hello")
	alice.until("alice is in the lobby", `document.querySelector('#rooms li.current')?.innerText.includes('lobby')`)

	// carol's browser asks for alice's name first: the failure shows.
	carol := openSession(t, ctx, "carol", srv.url())
	carol.submit("#name", "alice", "#hello")
	carol.failed(reasonNameTaken)
	carol.submit("#name", "carol", "#hello")
	carol.shows("#members", "alice")

	// bob: the example's client role, reading from a pipe.
	in, feed := io.Pipe()
	bobOut := newTranscript()
	bobDone := make(chan error, 1)
	go func() {
		bobDone <- run(ctx, []string{"-role", "client", "-tcp", tcpOf(srv), "-name", "bob", "-room", "lobby"}, in, bobOut, io.Discard)
	}()
	defer feed.Close()
	bobOut.waitFor(t, "client: you are bob")
	for _, s := range []*browserSession{alice, carol} {
		s.shows("#members", "bob")
		s.shows("#online", "bob")
	}

	alice.say("hello from alice")
	carol.shows("#messages", "hello from alice")
	bobOut.waitFor(t, "[lobby] alice: hello from alice")

	carol.say("carol here, hi both")
	alice.shows("#messages", "carol here, hi both")
	bobOut.waitFor(t, "[lobby] carol: carol here, hi both")

	if _, err := io.WriteString(feed, "bob on the terminal says hi\n"); err != nil {
		t.Fatal(err)
	}
	alice.shows("#messages", "bob on the terminal says hi")
	carol.shows("#messages", "bob on the terminal says hi")

	// Typed failures, shown to the person who caused them.
	alice.submit("#newroom", strings.Repeat("r", maxRoom+8), `#join button[type=submit]`)
	alice.failed(reasonRoomNameTooLong)
	carol.say("   ")
	carol.failed(reasonEmptyMessage)

	// The page's text has every message, in the order sent.
	text, err := chromedp.Run(alice.ctx, chromedp.Text(chromedp.CSS("#messages")))
	if err != nil {
		t.Fatal(err)
	}
	a, c, b := strings.Index(text, "hello from alice"), strings.Index(text, "carol here"), strings.Index(text, "bob on the terminal")
	if a < 0 || c < a || b < c {
		t.Errorf("alice's messages, not in the order sent:\n%s", text)
	}
	if !strings.Contains(alice.text(), reasonRoomNameTooLong) {
		t.Errorf("alice's page does not name the failure:\n%s", alice.text())
	}

	shot, err := chromedp.Run(alice.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, shot)

	// bob's input ends: the client role stops cleanly.
	feed.Close()
	select {
	case err := <-bobDone:
		if err != nil {
			t.Errorf("the client role: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the client role did not stop at the end of its input")
	}
	srvOut.waitFor(t, "server: [lobby] bob: bob on the terminal says hi")

	// The page shows that the connection dropped when the server goes.
	if err := srv.shutdown(); err != nil {
		t.Fatal(err)
	}
	alice.until("the page shows the connection lost", `document.querySelector('#status').dataset.state === 'reconnecting'`)

	// A new server on the same ports (the page's too: its origin is the
	// one the WebSocket endpoint allows): the pages reconnect, take their
	// names again and rejoin their rooms, which a Go client sees.
	lns, err := listen(ctx, srv.lns.page.Addr().String(), srv.lns.ws.Addr().String(), "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening again on the same ports: %v", err)
	}
	again, err := start(context.Background(), &printer{w: io.Discard}, lns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.shutdown() })
	for _, s := range []*browserSession{alice, carol} {
		s.until("the page is connected again", `document.querySelector('#status').dataset.state === 'connected'`)
	}
	dave := hello(t, tcpOf(again), "dave")
	var m membersResp
	dave.must(opJoin, roomReq{Room: "lobby"}, &m)
	for !slices.Equal(m.Members, []string{"alice", "carol", "dave"}) {
		next(dave, opJoined, func(p presenceMsg) bool { m.Members = p.Members; return true })
	}
	alice.shows("#members", "dave")
}

// checkScreenshot saves the PNG under the test's temporary directory
// (and in $CHAT_SCREENSHOT_DIR if set) and checks that it is an image of
// the viewport's size that is not blank: many colours, none covering
// nearly all of it.
func checkScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chat.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if dir := os.Getenv(screenshotEnv); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "chat.png"), shot, 0o644); err != nil {
			t.Errorf("%s: %v", screenshotEnv, err)
		}
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, viewW, viewH) {
		t.Errorf("screenshot of %v, want %dx%d", got, viewW, viewH)
	}
	counts := map[[4]uint32]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[[4]uint32{r, g, bl, a}]++
		}
	}
	most := 0
	for _, n := range counts {
		most = max(most, n)
	}
	if len(counts) < 32 || most > b.Dx()*b.Dy()*9/10 {
		t.Errorf("the screenshot looks blank: %d colours, the commonest on %d of %d pixels", len(counts), most, b.Dx()*b.Dy())
	}
}
