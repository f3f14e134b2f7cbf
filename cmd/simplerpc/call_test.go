package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// testServer starts an in-process server whose opcode 0 fails with
// ArgumentMissing and whose opcode 5 answers nothing. It counts the
// connections it accepted.
func testServer(t *testing.T) (addr string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	r := handler.NewRouter()
	r.On(0, func(handler.Conn, []byte) error {
		return handler.ArgumentMissing("Expected argument 'argname' in opcode 0")
	})
	r.On(5, func(handler.Conn, []byte) error { return nil })
	return startEngine(t, r, engine.WithOnConnect(func(handler.Conn) { conns.Add(1) })), conns
}

// newEngine starts an in-process server on a free loopback port with
// message size 128 and the options given; the cleanup shuts it down.
func newEngine(t *testing.T, r *handler.Router, opts ...engine.ServerOption) *engine.Server {
	t.Helper()
	srv, err := engine.NewServer(r, append([]engine.ServerOption{engine.WithMessageSize(128)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

// startEngine is newEngine, returning the address.
func startEngine(t *testing.T, r *handler.Router, opts ...engine.ServerOption) string {
	t.Helper()
	return newEngine(t, r, opts...).Addr().String()
}

// recordingServer starts an in-process server whose opcode 6 answers
// nothing and hands each object it gets to the returned channel.
func recordingServer(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ch := make(chan string, 16)
	r := handler.NewRouter()
	r.On(6, func(_ handler.Conn, data []byte) error {
		ch <- string(data)
		return nil
	})
	return startEngine(t, r), ch
}

// wantReceived fails unless the server got obj.
func wantReceived(t *testing.T, got <-chan string, obj string) {
	t.Helper()
	select {
	case g := <-got:
		if g != obj {
			t.Errorf("the server got %s, want %s", g, obj)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the server never got %s", obj)
	}
}

// decodeLine decodes the single JSON line of out.
func decodeLine(t *testing.T, out string) map[string]any {
	t.Helper()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want exactly one line, got %q", out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	return v
}

func TestCallEcho(t *testing.T) {
	t.Parallel()
	srv, addr := startServe(t)
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{"some_data": 123, "s": "<h\u00e9llo>"}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{"some_data":123,"s":"<h\u00e9llo>"}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	// The server logs the connection and its end.
	srv.waitLine(t, reLine(`msg=connect conn=\d+ remote=127\.0\.0\.1:\d+`), 10*time.Second)
	srv.waitLine(t, reLine(`msg=disconnect conn=\d+ remote=127\.0\.0\.1:\d+ reason=EOF`), 10*time.Second)

	// JSON may come from stdin, and defaults to {}.
	r = runCommand(t, 20*time.Second, `  {"from": "stdin"}`+"\n", binary, "call", "--addr", addr, "0", "-")
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{"from":"stdin"}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	r = runBin(t, 20*time.Second, "call", "--addr", addr, "0")
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestCallBroadcast(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "1", `{"hello":"everyone"}`)
	r.wantCode(t, 0)
	if want := `{"opcode":1,"data":{"hello":"everyone"}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

func TestCallRequest(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "--request", "0", `{"q":[1,2]}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"reply":{"q":[1,2]}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	// No call handler on opcode 9: the failure comes back.
	r = runBin(t, 20*time.Second, "call", "--addr", addr, "--request", "9", `{}`)
	r.wantCode(t, 1)
	v := decodeLine(t, r.stdout)
	f, _ := v["failure"].(map[string]any)
	if f["reason"] != "UnknownOpcode" {
		t.Errorf("stdout %q: want reason UnknownOpcode", r.stdout)
	}
}

func TestCallRemoteFailure(t *testing.T) {
	t.Parallel()
	addr, _ := testServer(t)
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{"wrong":"argument"}`)
	r.wantCode(t, 1)
	want := `{"failure":{"reason":"ArgumentMissing","message":"Expected argument 'argname' in opcode 0"}}` + "\n"
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "remote failure: ArgumentMissing") {
		t.Errorf("stderr %q does not name the failure", r.stderr)
	}
}

// TestCallNothingBack: a one-way frame that gets no answer within
// --timeout exits 0 once the frame is written, and says so.
func TestCallNothingBack(t *testing.T) {
	t.Parallel()
	addr, got := recordingServer(t)
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "--timeout", "1s", "6", `{"n":1}`)
	r.wantCode(t, 0)
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	if !strings.Contains(r.stderr, "call: nothing came back within 1s") {
		t.Errorf("stderr %q does not say that nothing came back", r.stderr)
	}
	overrun(t, r, time.Second)
	wantReceived(t, got, `{"n":1}`)
}

// TestCallNoReply: --no-reply exits 0 as soon as the frame is written and
// the connection closed, long before --timeout, and the server has it.
func TestCallNoReply(t *testing.T) {
	t.Parallel()
	addr, got := recordingServer(t)
	const timeout = 20 * time.Second
	r := runBin(t, 2*timeout, "call", "--addr", addr, "--timeout", timeout.String(), "--no-reply", "6", `{"n":2}`)
	r.wantCode(t, 0)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("stdout %q, stderr %q: want nothing", r.stdout, r.stderr)
	}
	if r.elapsed > timeout/2 {
		t.Errorf("took %v: --no-reply waited for something", r.elapsed)
	}
	wantReceived(t, got, `{"n":2}`)

	// A failure that would come back is not waited for either.
	failing, _ := testServer(t)
	r = runBin(t, 2*timeout, "call", "--addr", failing, "--timeout", timeout.String(), "--no-reply", "0", `{}`)
	r.wantCode(t, 0)
	if r.elapsed > timeout/2 {
		t.Errorf("took %v: --no-reply waited for something", r.elapsed)
	}
}

// TestCallTimeoutBounds runs call and listen against a server that accepts
// and never announces its message size: each must give up within its
// --timeout, close included, and say why.
func TestCallTimeoutBounds(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	const timeout = time.Second
	for _, args := range [][]string{
		{"call", "0"},
		{"call", "--request", "0"},
		{"call", "--no-reply", "0"},
		{"listen"},
		{"listen", "--count", "1"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := runBin(t, 20*time.Second, append(args, "--addr", addr, "--timeout", timeout.String())...)
			r.wantCode(t, 1)
			if want := addr + " did not announce its message size within 1s"; !strings.Contains(r.stderr, want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, want)
			}
			// The close used to add 2s, and the engine's dial timeout 10s.
			overrun(t, r, timeout)
		})
	}
}

func TestCallClosedPort(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{}`)
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "cannot connect to "+addr+": connection refused") {
		t.Errorf("stderr %q does not say the connection was refused", r.stderr)
	}
}

func TestCallTooLarge(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	big := `{"p":"` + strings.Repeat("x", 300) + `"}`
	for _, args := range [][]string{{"0", big}, {"--request", "0", big}, {"--no-reply", "0", big}} {
		r := runBin(t, 20*time.Second, append([]string{"call", "--addr", addr}, args...)...)
		r.wantCode(t, 2)
		if want := "simplerpc: call: the frame needs "; !strings.HasPrefix(r.stderr, want) ||
			!strings.Contains(r.stderr, "bytes but the server's message size is 256\n") {
			t.Errorf("stderr %q does not explain the size in one sentence", r.stderr)
		}
	}
}

// TestCallBadInput checks that bad arguments fail with status 2 and a
// clear message before anything is sent: the listener sees no connection.
func TestCallBadInput(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"truncated", []string{"0", `{"a":`}, "JSON argument is not valid JSON: unexpected end of JSON input"},
		{"array", []string{"0", `[1,2]`}, "JSON argument must be an object ({...}), got an array"},
		{"string", []string{"0", `"x"`}, "got a string"},
		{"trailing", []string{"0", `{"a":1}}`}, "JSON argument is not valid JSON: invalid character '}' after top-level value"},
		{"two objects", []string{"0", `{} {}`}, "after top-level value"},
		{"empty", []string{"0", ``}, "unexpected end of JSON input"},
		{"negative opcode", []string{"--", "-2", `{}`}, `OPCODE "-2": want a non-negative integer`},
		{"word opcode", []string{"echo", `{}`}, `OPCODE "echo": want a non-negative integer`},
		{"no args", nil, "accepts between 1 and 2 arg(s), received 0"},
		{"three args", []string{"0", "{}", "{}"}, "accepts between 1 and 2 arg(s), received 3"},
		{"bad timeout", []string{"--timeout", "soon", "0"}, `invalid argument "soon" for "--timeout"`},
		{"zero timeout", []string{"--timeout", "0s", "0"}, "--timeout must be positive"},
		{"addr without port", []string{"--addr", "localhost", "0"}, `--addr "localhost" is not of the form host:port`},
		{"addr port out of range", []string{"--addr", ":99999", "0"}, `--addr ":99999": the port must be a number from 1 to 65535`},
		{"addr scheme", []string{"--addr", "http://x", "0"}, `--addr "http://x": unsupported scheme "http"`},
		{"no-reply request", []string{"--no-reply", "--request", "0"}, "--no-reply and --request exclude each other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, 20*time.Second, append([]string{"call", "--addr", addr}, tc.args...)...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
			if !strings.Contains(r.stderr, "Run 'simplerpc call --help' for usage.") {
				t.Errorf("stderr %q has no pointer to the help", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	// Connecting completes in the kernel before the client could send: had
	// any run connected, the connection would be waiting to be accepted.
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
	if c, err := ln.Accept(); err == nil {
		c.Close()
		t.Error("a run with bad input connected to the server")
	}
}

func TestCallUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "s.sock")
	_, addr := startServe(t, "--addr", "unix://"+sock)
	if addr != "unix://"+sock {
		t.Fatalf("serve logged addr=%s, want unix://%s", addr, sock)
	}
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{"via":"unix"}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{"via":"unix"}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

// TestCallMisbehavingServer runs call against hand-written servers that
// break the protocol after their message size.
func TestCallMisbehavingServer(t *testing.T) {
	t.Parallel()
	closing := fakeServer(t, func(c net.Conn) { _ = announce(c) })
	silentThen := func(frames ...string) string {
		return fakeServer(t, func(c net.Conn) {
			if announce(c, frames...) == nil {
				_, _ = io.Copy(io.Discard, c)
			}
		})
	}
	for _, tc := range []struct {
		name string
		addr string
		args []string
		msg  string
	}{
		{"close after the size", closing, []string{"0"}, "call: the server closed the connection before"},
		{"close after the size, a call", closing, []string{"--request", "0"}, "call: the server closed the connection before"},
		{"failure without a reason", silentThen(`-1{"x":1}`), []string{"0"},
			`call: the server sent a failure frame without a reason, -1{"x":1}, and nothing else came back within 1s`},
		{"undefined opcode", silentThen(`-42{}`), []string{"0"},
			"call: the server sent a frame with an opcode the protocol does not define, -42{}"},
		{"reply for another id", silentThen(`-4{"id":987654,"data":{}}`), []string{"--request", "0"},
			`call: the server sent a reply that matches no call (malformed or for another id), -4{"id":987654,"data":{}}, and no reply within 1s`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, 20*time.Second, append([]string{"call", "--addr", tc.addr, "--timeout", "1s"}, tc.args...)...)
			r.wantCode(t, 1)
			// A frame that reaches the server before its close makes the
			// close a reset (unread data): the same event, named so.
			reset := strings.Replace(tc.msg, "closed the connection", "reset the connection", 1)
			if !strings.Contains(r.stderr, tc.msg) && !strings.Contains(r.stderr, reset) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
			if strings.Contains(r.stderr, "use of closed network connection") {
				t.Errorf("stderr %q gives the engine's error, not what the server did", r.stderr)
			}
		})
	}

	// --no-reply races with the server's close: the client may write the
	// frame and close before it reads the server's FIN (exit 0: the frame
	// was written, which is all --no-reply promises), or notice the close
	// first (exit 1, naming it).
	t.Run("close after the size, no reply", func(t *testing.T) {
		t.Parallel()
		r := runBin(t, 20*time.Second, "call", "--addr", closing, "--timeout", "1s", "--no-reply", "0")
		if r.code == 0 && r.stderr == "" {
			return
		}
		r.wantCode(t, 1)
		if want := "call: the server closed the connection before"; !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not contain %q", r.stderr, want)
		}
	})
}

// TestCallSkipsPushes: call prints the answer, on the opcode it sent,
// not a frame the server pushed on its own, whether the push came on
// connect or between the request and the answer (issue 32, item 7).
func TestCallSkipsPushes(t *testing.T) {
	t.Parallel()
	// A server that greets on connect, and pushes again once it has the
	// request, before answering it on its opcode.
	addr := fakeServer(t, func(c net.Conn) {
		if announce(c, `1{"welcome": "lobby"}`) != nil {
			return
		}
		buf := make([]byte, fakeSize)
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		_, _ = c.Write(append(padded(fakeSize, `1{"joined": 7}`), padded(fakeSize, `4{"answer": 42}`)...))
		_, _ = io.Copy(io.Discard, c)
	})
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "4", `{}`)
	r.wantCode(t, 0)
	if want := `{"opcode":4,"data":{"answer":42}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	// --reply-opcode takes another opcode as the answer.
	r = runBin(t, 20*time.Second, "call", "--addr", addr, "--reply-opcode", "1", "4", `{}`)
	r.wantCode(t, 0)
	if v := decodeLine(t, r.stdout); v["opcode"] != float64(1) {
		t.Errorf("with --reply-opcode 1: stdout %q, want a frame on opcode 1", r.stdout)
	}
	// No answer on the opcode: exit 0 as for a one-way frame, naming
	// what was skipped.
	r = runBin(t, 20*time.Second, "call", "--addr", addr, "--timeout", "1s", "--reply-opcode", "9", "4", `{}`)
	r.wantCode(t, 0)
	if want := `skipped 3 frame(s) on other opcodes, the first 1{"welcome": "lobby"}`; !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Errorf("stdout %q, stderr %q; want nothing printed and stderr naming %q", r.stdout, r.stderr, want)
	}
	for _, flag := range []string{"--request", "--no-reply"} {
		r = runBin(t, 20*time.Second, "call", "--addr", addr, flag, "--reply-opcode", "1", "4", `{}`)
		r.wantCode(t, 2)
	}
}
