package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPprofOptIn: the profiles are served only with --pprof; a host-less
// --metrics-addr binds loopback (issue 28, item 3).
func TestPprofOptIn(t *testing.T) {
	t.Parallel()
	p, _ := startServe(t, "--metrics-addr", ":0", "--quiet")
	maddr := p.waitLine(t, reLine(`msg="metrics listening" addr=(\S+)`), 10*time.Second)[1]
	if host, _, _ := net.SplitHostPort(maddr); host != "127.0.0.1" {
		t.Errorf("--metrics-addr :0 bound %s, want 127.0.0.1", maddr)
	}
	if !strings.Contains(httpGet(t, "http://"+maddr+"/metrics", 10*time.Second), "go_goroutines ") {
		t.Error("/metrics lacks go_goroutines")
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
		resp, err := http.Get("http://" + maddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s without --pprof: %s, want 404", path, resp.Status)
		}
	}
	r := runBin(t, 20*time.Second, "serve", "--addr", "127.0.0.1:0", "--pprof")
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "--pprof needs --metrics-addr") {
		t.Errorf("--pprof alone: stderr %q", r.stderr)
	}
}

// TestTokenSecret: a token given with --auth-token is not in what --pprof
// serves (/debug/pprof/cmdline), and every client command takes the token
// from the flag, a file or $SIMPLERPC_AUTH_TOKEN (issue 28, item 3).
func TestTokenSecret(t *testing.T) {
	t.Parallel()
	const secret = "TopSecret99"
	p, addr := startServe(t, "--auth-token", secret, "--metrics-addr", "127.0.0.1:0", "--pprof", "--quiet")
	maddr := p.waitLine(t, reLine(`msg="metrics listening" addr=(\S+)`), 10*time.Second)[1]
	cmdline := httpGet(t, "http://"+maddr+"/debug/pprof/cmdline", 10*time.Second)
	if strings.Contains(cmdline, secret) || !strings.Contains(cmdline, "--pprof") {
		t.Errorf("/debug/pprof/cmdline %q: want the command line without the token", cmdline)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := `{"opcode":0,"data":{"n":1}}` + "\n"
	for name, argv := range map[string][]string{
		"flag": {binary, "call", "--addr", addr, "--auth-token", secret, "0", `{"n":1}`},
		"file": {binary, "call", "--addr", addr, "--auth-token-file", file, "0", `{"n":1}`},
		"env":  {"env", envAuthToken + "=" + secret, binary, "call", "--addr", addr, "0", `{"n":1}`},
	} {
		r := runCommand(t, 20*time.Second, "", argv[0], argv[1:]...)
		if r.code != 0 || r.stdout != want {
			t.Errorf("token from the %s: exit %d, stdout %q, stderr %q; want 0 and %q", name, r.code, r.stdout, r.stderr, want)
		}
	}
	r := runCommand(t, 20*time.Second, "", "env", envAuthToken+"="+secret, binary, "listen", "--addr", addr,
		"--send", `0 {"n":2}`, "--count", "1", "--timeout", "10s")
	if r.code != 0 || !strings.Contains(r.stdout, `"data":{"n":2}`) {
		t.Errorf("listen with the token from the environment: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCommand(t, 30*time.Second, "", "env", envAuthToken+"="+secret, binary, "bench", "--addr", addr,
		"--conns", "1", "--duration", "200ms")
	r.wantCode(t, 0)
	// The server takes its token from a file too; bad sources are usage
	// errors.
	_, addr2 := startServe(t, "--auth-token-file", file, "--quiet")
	runBin(t, 20*time.Second, "call", "--addr", addr2, "--auth-token-file", file, "0", `{}`).wantCode(t, 0)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"call", "--auth-token", "x", "--auth-token-file", file, "0"},
		{"call", "--auth-token-file", filepath.Join(t.TempDir(), "missing"), "0"},
		{"serve", "--addr", "127.0.0.1:0", "--auth-token-file", empty},
	} {
		r := runBin(t, 20*time.Second, args...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "--auth-token") {
			t.Errorf("%v: stderr %q does not name the flag", args, r.stderr)
		}
	}
}

// TestHideAuthToken: the token and its flag leave the arguments in both
// spellings; what follows "--" is kept.
func TestHideAuthToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, kept []string
		token    string
	}{
		{[]string{"simplerpc", "serve", "--auth-token", "s", "--quiet"}, []string{"simplerpc", "serve", "--quiet"}, "s"},
		{[]string{"simplerpc", "call", "--auth-token=s=1", "0"}, []string{"simplerpc", "call", "0"}, "s=1"},
		{[]string{"simplerpc", "call", "0", "--", "--auth-token", "x"}, []string{"simplerpc", "call", "0", "--", "--auth-token", "x"}, ""},
	} {
		kept, token, found := hideAuthToken(tc.in)
		if !slices.Equal(kept, tc.kept) || token != tc.token || found != (tc.token != "") {
			t.Errorf("hideAuthToken(%q) = %q, %q, %v; want %q, %q", tc.in, kept, token, found, tc.kept, tc.token)
		}
	}
}

// openFDs counts the descriptors process pid holds (Linux).
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestMetricsConnCap: idle connections to --metrics-addr, many more than
// its cap, do not take the process's descriptors: it holds at most
// metricsMaxConns of them, and the protocol's port still serves (issue
// 28, item 3).
func TestMetricsConnCap(t *testing.T) {
	t.Parallel()
	p, addr := startServe(t, "--metrics-addr", "127.0.0.1:0", "--quiet")
	maddr := p.waitLine(t, reLine(`msg="metrics listening" addr=(\S+)`), 10*time.Second)[1]
	httpGet(t, "http://"+maddr+"/metrics", 10*time.Second) // the server is up; its own descriptors are open
	base := openFDs(t, p.cmd.Process.Pid)
	const extra = 4 * metricsMaxConns
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range extra {
		c, err := net.Dial("tcp", maddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The server takes connections until the cap; an uncapped one takes
	// all of them within milliseconds. Watched for a second, bounded.
	const slack = 8
	most := 0
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		most = max(most, openFDs(t, p.cmd.Process.Pid)-base)
	}
	if most < metricsMaxConns-slack || most > metricsMaxConns+slack {
		t.Errorf("%d idle connections took up to %d more descriptors; want about the cap, %d", extra, most, metricsMaxConns)
	}
	runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{}`).wantCode(t, 0)
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	httpGet(t, "http://"+maddr+"/metrics", 20*time.Second) // the slots come back
}
