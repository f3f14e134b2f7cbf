package main

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var alsoListeningRE = reLine(`msg="also listening" addr=(\S+)`)

// alsoListening returns the address of serve's "also listening" line,
// logged before its "listening" line.
func alsoListening(t *testing.T, p *proc) string {
	t.Helper()
	m := alsoListeningRE.FindStringSubmatch(p.stderr.String())
	if m == nil {
		t.Fatalf("no also listening line:\n%s", p.stderr.String())
	}
	return m[1]
}

// TestServeWebSocket runs one serve with a TCP and a ws:// address: a
// broadcast on opcode 1 from a TCP client reaches a WebSocket client, and
// one from a WebSocket client reaches the TCP client; call and bench work
// over ws:// too.
func TestServeWebSocket(t *testing.T) {
	t.Parallel()
	p, tcp := startServe(t, "--addr", "127.0.0.1:0", "--addr", "ws://127.0.0.1:0/rpc")
	ws := alsoListening(t, p)
	if !strings.HasPrefix(ws, "ws://127.0.0.1:") || !strings.HasSuffix(ws, "/rpc") {
		t.Fatalf("ws address %q", ws)
	}
	lws := startBin(t, "listen", "--addr", ws, "--count", "2")
	ltcp := startBin(t, "listen", "--addr", tcp, "--count", "2")
	for _, l := range []*proc{lws, ltcp} {
		if m := l.waitLine(t, listenReadyRE, 20*time.Second); m[1] != "256" {
			t.Errorf("message size %s, want 256", m[1])
		}
	}
	runBin(t, 20*time.Second, "call", "--addr", tcp, "1", `{"from":"tcp"}`).wantCode(t, 0)
	runBin(t, 20*time.Second, "call", "--addr", ws, "1", `{"from":"ws"}`).wantCode(t, 0)
	for name, l := range map[string]*proc{"ws": lws, "tcp": ltcp} {
		if code := l.wait(t, 20*time.Second); code != 0 {
			t.Fatalf("listen over %s exited %d\nstderr:\n%s", name, code, l.stderr.String())
		}
		lines := listenLines(t, l.stdout.String())
		if len(lines) != 2 || string(lines[0].Data) != `{"from":"tcp"}` || string(lines[1].Data) != `{"from":"ws"}` ||
			lines[0].Opcode != 1 || lines[1].Opcode != 1 {
			t.Errorf("listen over %s heard:\n%s", name, l.stdout.String())
		}
	}
	r := runBin(t, 20*time.Second, "call", "--addr", ws, "--request", "0", `{"a":1}`)
	r.wantCode(t, 0)
	if r.stdout != `{"opcode":0,"reply":{"a":1}}`+"\n" {
		t.Errorf("call --request over ws: %q", r.stdout)
	}
	b := runBin(t, 60*time.Second, "bench", "--addr", ws, "--conns", "4", "--duration", "300ms", "--json")
	b.wantCode(t, 0)
	if !strings.Contains(b.stdout, `"conns":4`) {
		t.Errorf("bench over ws: %s", b.stdout)
	}
}

// TestServeWSS serves wss:// beside TLS and checks call over it, with the
// CA of a certificate made in the test, and its refusal without it.
func TestServeWSS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	p, _ := startServe(t, "--addr", "127.0.0.1:0", "--addr", "wss://127.0.0.1:0/rpc", "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey)
	wss := alsoListening(t, p)
	if !strings.HasPrefix(wss, "wss://127.0.0.1:") {
		t.Fatalf("wss address %q", wss)
	}
	r := runBin(t, 20*time.Second, "call", "--addr", wss, "--tls-ca", pki.ca, "0", `{"a":1}`)
	r.wantCode(t, 0)
	if r.stdout != `{"opcode":0,"data":{"a":1}}`+"\n" {
		t.Errorf("call over wss: %q", r.stdout)
	}
	r = runBin(t, 20*time.Second, "call", "--addr", wss, "--timeout", "5s", "0", `{"a":1}`)
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "certificate") {
		t.Errorf("call over wss without the CA: %s", r.stderr)
	}
}

// TestServeWebSocketUsage checks the usage errors of WebSocket addresses.
func TestServeWebSocketUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"serve", "--addr", "wss://127.0.0.1:0/rpc"}, "give --tls-cert and --tls-key"},
		{[]string{"serve", "--addr", "ws://127.0.0.1/rpc"}, "has no port"},
		{[]string{"serve", "--addr", "ws://127.0.0.1:0/a:b"}, "must not contain ':'"},
		{[]string{"serve", "--addr", "ws://127.0.0.1:0/rpc?x=1"}, "takes no query"},
		{[]string{"call", "--addr", "ws:///rpc", "0", "{}"}, "is not of the form ws://host:port/path"},
		{[]string{"call", "--addr", "ws://127.0.0.1:99999/rpc", "0", "{}"}, "the port must be a number"},
	} {
		r := runBin(t, 20*time.Second, tc.args...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.err) {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.stderr, tc.err)
		}
	}
}

// TestListenerNames checks the names that carry a WebSocket listener's
// path to a successor.
func TestListenerNames(t *testing.T) {
	for _, tc := range []struct{ name, scheme, path string }{
		{wsListenerName("ws", "/rpc"), "ws", "/rpc"},
		{wsListenerName("wss", ""), "wss", "/"},
		{"simplerpc", "", ""},
		{"LISTEN_FD_3", "", ""},
		{"wsx/rpc", "", ""},
	} {
		if s, p := wsOfName(tc.name); s != tc.scheme || p != tc.path {
			t.Errorf("%q: %q %q, want %q %q", tc.name, s, p, tc.scheme, tc.path)
		}
	}
}

// TestServeSocketActivationWebSocket hands serve two sockets, one named
// for WebSocket (FileDescriptorName=ws/rpc, here --fdname): serve serves
// the protocol on the first and WebSocket at /rpc on the second.
func TestServeSocketActivationWebSocket(t *testing.T) {
	t.Parallel()
	act := activateCommand(t)
	tcp, ws := closedAddr(t), closedAddr(t)
	p := startProc(t, act, "-l", tcp, "-l", ws, "--fdname", "simplerpc:ws/rpc",
		"-E", "GORACE="+os.Getenv("GORACE"), binary, "serve", "--size", "256")
	p.waitLine(t, reLine(`Listening on `+regexp.QuoteMeta(ws)), 20*time.Second)
	// systemd-socket-activate starts serve at the first connection.
	runBin(t, 30*time.Second, "call", "--addr", tcp, "--timeout", "20s", "0", `{"via":"tcp"}`).wantCode(t, 0)
	r := runBin(t, 30*time.Second, "call", "--addr", "ws://"+ws+"/rpc", "--timeout", "20s", "0", `{"via":"ws"}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{"via":"ws"}}` + "\n"; r.stdout != want {
		t.Errorf("call over ws printed %q, want %q", r.stdout, want)
	}
	if m := alsoListeningRE.FindStringSubmatch(p.stderr.String()); m == nil || m[1] != "ws://"+ws+"/rpc" {
		t.Errorf("serve's also listening line: %v\n%s", m, p.stderr.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("serve exited %d\nstderr:\n%s", code, p.stderr.String())
	}
}
