//go:build linux

// This file tests the example as systemd runs it: under
// systemd-socket-activate, with a notify socket, upgraded on SIGHUP while
// its peers talk.

package main

import (
	"github.com/simplerpc/simplerpc/internal/testkit"

	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestUnderSystemd runs the example under systemd-socket-activate with
// NOTIFY_SOCKET: it says READY=1 on the socket it is handed; then, on
// SIGHUP, while peers keep calling (numbered says, each answered once and
// in order), it hands them to its successor, which the service manager is
// told about (MAINPID=) and which speaks to it afterwards (STOPPING=1).
// No peer sees a close; the successor serves them with their names and
// rooms (the example's handover state and the engine's groups).
func TestUnderSystemd(t *testing.T) {
	act, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatal("systemd-socket-activate is not installed (apt-get install systemd): this test needs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "rooms")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock, notes := notifySocket(t)
	addr := freeAddr(t)
	p := startProc(t, ctx, act, "-l", addr, "-E", "NOTIFY_SOCKET="+sock, bin, "-addr", "127.0.0.1:1")
	p.waitFor(regexp.MustCompile(`Listening on ` + regexp.QuoteMeta(addr)))

	const peers = 8
	ps := make([]*peer, peers)
	for i := range ps {
		ps[i] = dialPeer(t, ctx, addr, fmt.Sprintf("p%d", i)) // the first starts the service
	}
	if m := p.waitFor(regexp.MustCompile(`msg=listening addr=(\S+) activated=(\d+) pid=(\d+)`)); m[1] != addr || m[2] != "1" || m[3] != strconv.Itoa(p.pid) {
		t.Fatalf("listening line %q, want %s, 1 activated socket, pid %d", m[0], addr, p.pid)
	}
	waitNote(t, ctx, notes, "READY=1")

	// Every peer says numbered lines to the lobby, each a call, until
	// told to stop.
	quit := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, peers)
	said := make([]atomic.Int64, peers)
	for i, pr := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pr.talk(ctx, quit, &said[i])
		}()
	}
	for _, pr := range ps { // the talk is under way before the upgrade
		pr.waitHeard(t, ctx, func(h heard) bool { return true })
	}
	if err := syscall.Kill(p.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m := waitNote(t, ctx, notes, `MAINPID=(\d+)`)
	next, _ := strconv.Atoi(m[1])
	if next == 0 || next == p.pid {
		t.Fatalf("MAINPID=%d, the old pid being %d", next, p.pid)
	}
	p.waitFor(regexp.MustCompile(`msg="upgrade: connections handed over" conns=` + strconv.Itoa(peers) + ` going_away=0`))
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("the old process exited with %v\n%s", err, p.logged())
		}
	case <-ctx.Done():
		t.Fatalf("the old process did not exit\n%s", p.logged())
	}
	// The successor alone now: every peer's calls go on, and its new lines
	// reach every peer, from the name it gave the old process.
	after := map[string]int64{}
	for i, pr := range ps {
		after[pr.name] = said[i].Load() + 1
	}
	for _, pr := range ps {
		pr.waitLines(t, ctx, after)
	}
	close(quit)
	wg.Wait()
	for range peers {
		if err := <-errs; err != nil {
			t.Fatalf("%v\n%s", err, p.logged())
		}
	}
	for i, pr := range ps {
		select {
		case <-pr.cl.Done():
			t.Fatalf("peer %d was closed: %v", i, pr.cl.Err())
		default:
		}
	}
	total := int64(0)
	for i := range said {
		total += said[i].Load()
	}
	t.Logf("%d calls in all, %d when the old process had exited", total, sum(after)-peers)
	if err := syscall.Kill(next, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitNote(t, ctx, notes, "STOPPING=1") // the successor speaks to the service manager
	p.waitEnd(t)
	if !regexp.MustCompile(`msg="adopted the predecessor's connections" conns=` + strconv.Itoa(peers)).MatchString(p.logged()) {
		t.Errorf("the successor did not adopt the peers\n%s", p.logged())
	}
}

// peer is a client that named itself and joined the lobby; heard gets
// what the lobby says.
type peer struct {
	name  string
	cl    *engine.Client
	heard chan heard
}

func dialPeer(t *testing.T, ctx context.Context, addr, name string) *peer {
	t.Helper()
	p := &peer{name: name, heard: make(chan heard, 4096)}
	r := handler.NewRouter()
	handler.Handle(r, opHeard, func(_ handler.Conn, h heard) error {
		select {
		case p.heard <- h:
		default: // the test reads only some of it
		}
		return nil
	})
	cl, err := engine.Dial(ctx, addr, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	p.cl = cl
	if err := cl.Call(ctx, opHello, hello{Name: name}, nil); err != nil {
		t.Fatalf("%s: hello: %v", name, err)
	}
	var m members
	if err := cl.Call(ctx, opJoin, join{Room: "lobby"}, &m); err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	if !contains(m.Members, name) {
		t.Fatalf("%s: members %v", name, m.Members)
	}
	return p
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// talk says numbered lines until quit: each call must be answered with
// its own number, on the connection the peer opened.
func (p *peer) talk(ctx context.Context, quit <-chan struct{}, n *atomic.Int64) error {
	for seq := 1; ; seq++ {
		select {
		case <-quit:
			return nil
		default:
		}
		var got say
		if err := p.cl.Call(ctx, opSay, say{Room: "lobby", Text: fmt.Sprintf("line %d", seq), Seq: seq}, &got); err != nil {
			return fmt.Errorf("%s: say %d: %w", p.name, seq, err)
		}
		if got.Seq != seq {
			return fmt.Errorf("%s: say %d answered as %d", p.name, seq, got.Seq)
		}
		n.Store(int64(seq))
		time.Sleep(time.Millisecond) // a steady stream, not a flood
	}
}

// waitHeard waits until the peer hears a line that ok accepts.
func (p *peer) waitHeard(t *testing.T, ctx context.Context, ok func(heard) bool) {
	t.Helper()
	for {
		select {
		case h := <-p.heard:
			if ok(h) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("%s heard nothing expected: %v", p.name, ctx.Err())
		}
	}
}

// waitLines waits until the peer has heard, from each peer named in
// after, a line in the lobby numbered past its number there.
func (p *peer) waitLines(t *testing.T, ctx context.Context, after map[string]int64) {
	t.Helper()
	left := len(after)
	seen := map[string]bool{}
	p.waitHeard(t, ctx, func(h heard) bool {
		n, ok := strings.CutPrefix(h.Text, "line ")
		seq, err := strconv.ParseInt(n, 10, 64)
		if min, known := after[h.From]; ok && err == nil && known && h.Room == "lobby" && seq > min && !seen[h.From] {
			seen[h.From] = true
			left--
		}
		return left == 0
	})
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// notifySocket is testkit's NotifySocket.
func notifySocket(t *testing.T) (string, <-chan string) { return testkit.NotifySocket(t) }

// waitNote waits for a notification line that matches the regular
// expression re, whole.
func waitNote(t *testing.T, ctx context.Context, lines <-chan string, re string) []string {
	t.Helper()
	rx := regexp.MustCompile("^" + re + "$")
	var seen []string
	for {
		select {
		case l := <-lines:
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
			seen = append(seen, l)
		case <-ctx.Done():
			t.Fatalf("no notification %s: %v; saw %q", re, ctx.Err(), seen)
		}
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a process of the test's, with its output, which its successor
// shares: the output ends when both have exited.
type proc struct {
	pid    int
	exited chan error
	lines  chan string
	ended  chan struct{}
	mu     sync.Mutex
	text   strings.Builder
	t      *testing.T
	ctx    context.Context
}

func startProc(t *testing.T, ctx context.Context, name string, args ...string) *proc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	p := &proc{pid: cmd.Process.Pid, exited: make(chan error, 1), lines: make(chan string, 4096), ended: make(chan struct{}), t: t, ctx: ctx}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-p.pid, syscall.SIGKILL) }) // it and its successor
	go func() {
		defer close(p.ended)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.text.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	return p
}

func (p *proc) logged() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.text.String()
}

// waitFor returns the submatches of the next output line that matches re.
func (p *proc) waitFor(re *regexp.Regexp) []string {
	p.t.Helper()
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.ended:
			for {
				select {
				case l := <-p.lines:
					if m := re.FindStringSubmatch(l); m != nil {
						return m
					}
					continue
				default:
				}
				break
			}
			p.t.Fatalf("the output ended before a line matching %v\n%s", re, p.logged())
		case <-p.ctx.Done():
			p.t.Fatalf("no line matching %v: %v\n%s", re, p.ctx.Err(), p.logged())
		}
	}
}

// waitEnd waits until every process writing the output has exited.
func (p *proc) waitEnd(t *testing.T) {
	t.Helper()
	select {
	case <-p.ended:
	case <-p.ctx.Done():
		t.Fatalf("the successor did not stop: %v\n%s", p.ctx.Err(), p.logged())
	}
}
