package main

import (
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestServeAuthToken: serve --auth-token lets in a client with the token
// and refuses one without (exit 1, Unauthorized), and --max-conns-per-ip
// is taken.
func TestServeAuthToken(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--auth-token", "s3cret", "--max-conns-per-ip", "50")
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "--auth-token", "s3cret", "0", `{"n": 1}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{"n":1}}` + "\n"; r.stdout != want {
		t.Errorf("with the token: stdout %q, want %q", r.stdout, want)
	}
	r = runBin(t, 20*time.Second, "call", "--addr", addr, "--timeout", "5s", "0", `{"n": 2}`)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "Unauthorized") {
		t.Errorf("without the token: exit %d, stdout %q, stderr %q; want a failure naming Unauthorized", r.code, r.stdout, r.stderr)
	}
	r = runBin(t, 20*time.Second, "serve", "--addr", "127.0.0.1:0", "--max-conns-per-ip", "-1")
	r.wantCode(t, 2)
}

// TestCallAuthAck: the server's -9 acknowledgement of the credentials is
// what call --auth-token asked for, not a frame it cannot make sense of:
// a one-way frame with no answer still exits 0 (issue 32, item 9).
func TestCallAuthAck(t *testing.T) {
	t.Parallel()
	r := handler.NewRouter()
	r.On(5, func(handler.Conn, []byte) error { return nil })
	addr := startEngine(t, r, engine.WithAuth(tokenAuthenticator("T"), 5*time.Second))
	res := runBin(t, 20*time.Second, "call", "--addr", addr, "--auth-token", "T", "--timeout", "1s", "5", `{}`)
	res.wantCode(t, 0)
	if !strings.Contains(res.stderr, "call: nothing came back within 1s") {
		t.Errorf("stderr %q does not say that nothing came back", res.stderr)
	}
}
