package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dialRawFrom is dialRaw from the local address ip.
func dialRawFrom(t *testing.T, ip, addr string) *rawPeer {
	t.Helper()
	d := net.Dialer{Timeout: testTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return &rawPeer{t: t, conn: c, r: bufio.NewReader(c)}
}

// authAs sends token from ip and returns the server's answer: the
// identity, or the failure's message.
func authAs(t *testing.T, ip, addr, token string) (identity, failure string) {
	t.Helper()
	p := dialRawFrom(t, ip, addr)
	p.greet(1024)
	p.write(`-9{"token":"` + token + `"}`)
	op, obj := p.read()
	var m struct{ Identity, Message string }
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("op %d %s: %v", op, obj, err)
	}
	switch op {
	case codec.OpAuth:
		return m.Identity, ""
	case codec.OpFailure:
		p.expectEOF()
		return "", m.Message
	}
	t.Fatalf("op %d %s", op, obj)
	return "", ""
}

var authSummary = regexp.MustCompile(`msg="simplerpc: authentications failed" last=\S+ err="[^"]*" times=(\d+)`)

// TestAuthFailureBudget: wrong tokens from one address spend its budget
// of failures; past it, even a good token from there is refused without
// the authenticator running, while another address still authenticates
// at once; the failures are logged as summary lines with their count,
// not one line each.
func TestAuthFailureBudget(t *testing.T) {
	t.Parallel()
	const budget, tries = 3, 8
	var calls atomic.Int64
	logs := &lockedBuffer{}
	srv := startServer(t, echoRouter(),
		engine.WithAuth(func(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
			calls.Add(1)
			if !strings.Contains(string(creds), `"good"`) {
				return "", &handler.Error{Reason: engine.ReasonUnauthorized, Message: "wrong token"}
			}
			return "user", nil
		}, testTimeout),
		engine.WithAuthFailureLimit(budget, time.Hour), // nothing comes back during the test
		engine.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	addr := srv.Addr().String()

	// A good token gives its attempt back: it spends nothing.
	for range budget + 1 {
		if id, f := authAs(t, "127.0.0.2", addr, "good"); id != "user" {
			t.Fatalf("a good token before any failure: refused %q", f)
		}
	}
	start := time.Now()
	var msgs []string
	for range tries {
		_, f := authAs(t, "127.0.0.2", addr, "bad")
		msgs = append(msgs, f)
	}
	elapsed := time.Since(start)
	for i, m := range msgs {
		want := "wrong token"
		if i >= budget {
			want = "Too many failed authentications from your address: try again later"
		}
		if m != want {
			t.Errorf("wrong token %d: %q, want %q", i+1, m, want)
		}
	}
	if _, f := authAs(t, "127.0.0.2", addr, "good"); !strings.HasPrefix(f, "Too many") {
		t.Errorf("a good token from the address that spent its budget: %q, want refused", f)
	}
	if n := calls.Load(); n != budget+1+budget {
		t.Errorf("the authenticator ran %d times, want %d: only the attempts within the budget reach it", n, 2*budget+1)
	}
	if id, f := authAs(t, "127.0.0.3", addr, "good"); id != "user" {
		t.Errorf("another address: refused %q", f)
	}
	if st := srv.Stats(); st.Refused[engine.RefuseAuth] != tries+1 {
		t.Errorf("refused for auth %d, want %d", st.Refused[engine.RefuseAuth], tries+1)
	}
	// One summary line a second at most: the first failure's, then one a
	// second with the count since.
	lines := authSummary.FindAllStringSubmatch(logs.String(), -1)
	if len(lines) == 0 || len(lines) > 1+int(elapsed/time.Second)+1 {
		t.Fatalf("%d summary lines for %d failures in %v:\n%s", len(lines), tries+1, elapsed, logs.String())
	}
	total := 0
	for _, l := range lines {
		n, _ := strconv.Atoi(l[1])
		total += n
	}
	if total > tries+1 || lines[0][1] != "1" {
		t.Errorf("summary lines count %d failures (first %s), of %d", total, lines[0][1], tries+1)
	}
	if c := strings.Count(logs.String(), "authentication failed"); c != 0 {
		t.Errorf("%d lines per failure", c)
	}
}
