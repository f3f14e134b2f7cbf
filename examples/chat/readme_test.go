// This file checks that the commands and transcripts of README.md work as
// shown: the server's lines, the page it serves, the Go client's session,
// a clean stop on Ctrl-C, and the exit status of bad flags.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readme holds the parts of README.md the tests run.
type readme struct {
	server, client []string // the arguments of the two go run commands
	serverLines    []string // the server's output as shown
	session        []string // the Go client's session as shown: its output and what was typed
	text           string
}

func readReadme(t *testing.T) readme {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	r := readme{text: string(b)}
	var block []string
	in := false
	for line := range strings.Lines(r.text) {
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "```") && !in:
			in, block = true, nil
		case strings.HasPrefix(line, "```"):
			in = false
			r.addBlock(t, block)
		case in:
			block = append(block, line)
		}
	}
	if r.server == nil || r.client == nil || r.serverLines == nil || r.session == nil {
		t.Fatalf("README.md lacks a command or a transcript: %+v", r)
	}
	return r
}

func (r *readme) addBlock(t *testing.T, block []string) {
	for _, line := range block {
		if rest, ok := strings.CutPrefix(line, "go run ./examples/chat"); ok {
			rest, _, _ = strings.Cut(rest, "#")
			args := strings.Fields(rest)
			if strings.Contains(strings.Join(args, " "), "-role client") {
				r.client = args
			} else {
				r.server = append([]string{}, args...)
			}
		}
	}
	switch {
	case len(block) > 0 && strings.HasPrefix(block[0], "chat: "):
		r.serverLines = block
	case len(block) > 0 && strings.HasPrefix(block[0], "client: "):
		r.session = block
	}
}

// addrRE matches the addresses the README shows, which the tests replace
// with free ports.
var addrRE = regexp.MustCompile(`127\\\.0\\\.0\\\.1:\d+`)

// freePorts are the overrides that put the server on free loopback ports.
var freePorts = []string{"-http", "127.0.0.1:0", "-ws", "127.0.0.1:0", "-tcp", "127.0.0.1:0"}

// TestReadme runs the README's server command and its Go client's
// session, with alice and carol as Go clients in the lobby.
func TestReadme(t *testing.T) {
	r := readReadme(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	srvOut := newTranscript()
	srvDone := make(chan error, 1)
	go func() { srvDone <- run(ctx, append(r.server, freePorts...), nil, srvOut, io.Discard) }()
	defer func() {
		cancel()
		if err := <-srvDone; err != nil {
			t.Errorf("the server role after Ctrl-C: %v, want nil", err)
		}
	}()
	for _, line := range r.serverLines {
		re := regexp.MustCompile("(?m)^" + addrRE.ReplaceAllString(regexp.QuoteMeta(line), `127\.0\.0\.1:\d+`) + "$")
		srvOut.waitForRE(t, re)
	}
	out := srvOut.String()
	pageURL := regexp.MustCompile(`open (http://\S+) in a browser`).FindStringSubmatch(out)[1]
	wsPort := regexp.MustCompile(`ws://127\.0\.0\.1:(\d+)/chat`).FindStringSubmatch(out)[1]
	tcpAddr := regexp.MustCompile(`Go clients on (\S+) `).FindStringSubmatch(out)[1]

	// The page, the client module and the page's configuration.
	if body := get(t, pageURL); !strings.Contains(body, "<title>simplerpc chat</title>") {
		t.Errorf("%s: not the page:\n%s", pageURL, body)
	}
	if body := get(t, pageURL+"js/simplerpc.js"); !strings.Contains(body, "export class Client") {
		t.Errorf("/js/simplerpc.js is not the JavaScript client:\n%.200s", body)
	}
	var cfg pageConfig
	if err := json.Unmarshal([]byte(get(t, pageURL+"config.json")), &cfg); err != nil || strconv.Itoa(cfg.WSPort) != wsPort || cfg.WSPath != wsPath {
		t.Errorf("config.json: %+v (%v), want port %s path %s", cfg, err, wsPort, wsPath)
	}

	// alice and carol are in the lobby; bob runs the README's client
	// command and its session.
	others := map[string]*goClient{}
	for _, name := range []string{"alice", "carol"} {
		others[name] = hello(t, tcpAddr, name)
		others[name].must(opJoin, roomReq{Room: "lobby"}, nil)
	}
	in, feed := io.Pipe()
	defer feed.Close()
	bobOut := newTranscript()
	bobDone := make(chan error, 1)
	go func() { bobDone <- run(ctx, append(r.client, "-tcp", tcpAddr), in, bobOut, io.Discard) }()
	said := regexp.MustCompile(`^\[(\w+)\] (\w+): (.*)$`)
	for _, line := range r.session {
		m := said.FindStringSubmatch(line)
		switch {
		case m != nil && others[m[2]] != nil: // another member says it
			others[m[2]].must(opSay, sayReq{Room: m[1], Text: m[3]}, nil)
		case m == nil && !strings.HasPrefix(line, "client: "): // bob types it
			if _, err := io.WriteString(feed, line+"\n"); err != nil {
				t.Fatal(err)
			}
			continue
		}
		bobOut.waitForRE(t, regexp.MustCompile("(?m)^"+regexp.QuoteMeta(line)+"$"))
	}

	// The failure the README shows, and /quit.
	const failed = "client: failure NotInRoom: you have not joined kitchen"
	if !strings.Contains(r.text, failed) {
		t.Fatalf("README.md no longer shows %q", failed)
	}
	if _, err := io.WriteString(feed, "/leave kitchen\n/quit\n"); err != nil {
		t.Fatal(err)
	}
	bobOut.waitFor(t, failed)
	select {
	case err := <-bobDone:
		if err != nil {
			t.Errorf("the client role after /quit: %v", err)
		}
	case <-ctx.Done():
		t.Fatalf("the client role did not stop after /quit:\n%s", bobOut.String())
	}
}

// get fetches url and returns its body, failing the test on any error or
// a status other than 200.
func get(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

// waitForRE waits until the output has a match of re.
func (tr *transcript) waitForRE(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !re.MatchString(tr.String()) {
		select {
		case <-tr.changed:
		case <-deadline:
			t.Fatalf("no match of %v in the output within a minute:\n%s", re, tr.String())
		}
	}
}

// TestInterrupt runs the README's server command as a process: Ctrl-C
// (SIGINT) stops it with exit status 0.
func TestInterrupt(t *testing.T) {
	r := readReadme(t)
	cmd := exec.Command(os.Args[0], append(r.server, freePorts...)...)
	// Under -race the runtime sleeps a second at exit by default, to catch
	// late reports; a race still makes the process exit with 66.
	cmd.Env = append(os.Environ(), mainEnv+"=1", "GORACE=atexit_sleep_ms=50")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "chat: open ") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	exited := make(chan error, 1)
	select {
	case <-ready:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the server did not start within a minute:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGINT: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("no exit within a minute of SIGINT:\n%s", stderr.String())
	}
}

// TestBadFlags: bad flags exit 2 and say why.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-role", "nope"}, {"-frobnicate"}, {"-role", "client"}, {"extra"}} {
		var errb strings.Builder
		err := run(context.Background(), args, nil, io.Discard, &errb)
		if code := exitCode(io.Discard, err); code != 2 {
			t.Errorf("run %q: exit %d (err %v), want 2", args, code, err)
		}
		if errb.Len() == 0 {
			t.Errorf("run %q said nothing on stderr", args)
		}
	}
	if err := run(context.Background(), []string{"-h"}, nil, io.Discard, io.Discard); err != nil {
		t.Errorf("-h: %v, want nil", err)
	}
}

// TestNameTakenExits: a client whose name is taken fails (exit 1) and
// says why.
func TestNameTakenExits(t *testing.T) {
	addr := tcpOf(startChat(t, io.Discard))
	hello(t, addr, "bob")
	err := run(t.Context(), []string{"-role", "client", "-tcp", addr, "-name", "bob"}, strings.NewReader(""), io.Discard, io.Discard)
	var errb strings.Builder
	if code := exitCode(&errb, err); code != 1 || !strings.Contains(errb.String(), reasonNameTaken) {
		t.Errorf("exit %d, %q; want 1 and %s", code, errb.String(), reasonNameTaken)
	}
}
