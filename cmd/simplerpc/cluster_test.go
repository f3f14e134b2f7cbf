package main

// This file tests serve's cluster mode and its opcodes 2 and 3: the flags'
// errors, the opcodes on a server alone, and a cluster of serve processes
// (cluster_procs_test.go); and holds the helpers they share: a log
// watcher and a demo client that counts what it gets.

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// testWait bounds every wait of these tests: a hung run, not a speed.
const testWait = 30 * time.Second

func TestServeClusterErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no node name", []string{"--cluster", "embedded"}, 2, "--cluster needs --node NAME"},
		{"bad node name", []string{"--cluster", "embedded", "--node", "a b"}, 2, `--node "a b": want 1 to 64 letters, digits`},
		{"long node name", []string{"--node", strings.Repeat("n", 65)}, 2, "want 1 to 64 letters"},
		{"node number out of range", []string{"--cluster", "embedded", "--node", "a", "--node-number", "1024"}, 2, "--node-number 1024 must lie within 1..1023"},
		{"node number alone", []string{"--node-number", "3"}, 2, "--node-number needs --cluster"},
		{"bad URL", []string{"--cluster", "http://127.0.0.1:4222", "--node", "a"}, 2, `want nats://host:port`},
		{"URL without port", []string{"--cluster", "nats://127.0.0.1", "--node", "a"}, 2, `want nats://host:port`},
		{"bad embedded port", []string{"--cluster", "embedded:99999", "--node", "a"}, 2, "the port must be a number from 1 to 65535"},
		{"NATS unreachable", []string{"--cluster", "nats://" + closedAddr(t), "--node", "a"}, 1, "connect to NATS at nats://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, testWait, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
			r.wantCode(t, tc.code)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
		})
	}
}

// TestServeClusterEmbedded runs a node with the embedded NATS server and a
// second node on it, and checks that a second process with a node number
// in use fails to start, naming the flags that settle it.
func TestServeClusterEmbedded(t *testing.T) {
	t.Parallel()
	token := filepath.Join(t.TempDir(), "token")
	first, w1 := startNode(t, "--cluster", "embedded", "--node", "one", "--node-number", "7", "--cluster-token-file", token)
	url := w1.wait(t, 0, reLine(`msg="embedded NATS listening" url=(\S+)`))[1]
	second, w2 := startNode(t, "--cluster", url, "--node", "two", "--cluster-token-file", token)
	w1.wait(t, 0, reLine(`msg="simplerpc cluster: node up" .*peer=`+fmt.Sprint(w2.number(t))))

	r := runBin(t, testWait, "serve", "--addr", "127.0.0.1:0", "--cluster", url, "--node", "again", "--node-number", "7",
		"--cluster-token-file", token)
	r.wantCode(t, 1)
	if want := `another live node has number 7 (from --node "again"): give another --node name, or --node-number`; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not contain %q", r.stderr, want)
	}

	ctx := ctxWithin(t, testWait)
	a, b := dialDemo(t, ctx, first.addr), dialDemo(t, ctx, second.addr)
	if a.node != "one" || b.node != "two" || cluster.NodeOf(a.id) != 7 || cluster.NodeOf(b.id) != w2.number(t) {
		t.Fatalf("whoami: %d on %q, %d on %q", a.id, a.node, b.id, b.node)
	}
	a.relay(t, b.id, `{"via":"nats"}`)
	b.wantFrame(t, ctx, opRelay, `{"via":"nats"}`)
	for _, n := range []*node{second, first} {
		n.stop(t)
	}
}

// TestServeRelayAlone checks opcodes 2 and 3 on a server without
// --cluster.
func TestServeRelayAlone(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--node", "solo")
	ctx := ctxWithin(t, testWait)
	a, b := dialDemo(t, ctx, addr), dialDemo(t, ctx, addr)
	if a.node != "solo" || a.id == b.id {
		t.Fatalf("whoami: %d on %q, %d on %q", a.id, a.node, b.id, b.node)
	}
	a.relay(t, b.id, `{"hello":"b"}`)
	b.wantFrame(t, ctx, opRelay, `{"hello":"b"}`)
	a.relay(t, a.id+b.id, `{}`)
	a.wantFailure(t, ctx, reasonUnknownConn, "is not connected")
	// Bad relays: the typed failures of the router.
	for _, tc := range []struct{ obj, reason string }{
		{`{"to": 1}`, handler.ReasonArgumentMissing},
		{`{"to": "x", "data": {}}`, handler.ReasonArgumentTypeError},
		{`{"to": 1, "data": [1]}`, handler.ReasonArgumentTypeError},
	} {
		if err := a.SendRaw(opRelay, []byte(tc.obj)); err != nil {
			t.Fatal(err)
		}
		a.wantFailure(t, ctx, tc.reason, "")
	}
	// A frame on opcode 3 is answered with a frame.
	if err := a.SendRaw(opWhoami, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	a.wantFrame(t, ctx, opWhoami, fmt.Sprintf(`{"net_id":%d,"node":"solo"}`, a.id))
}

func TestNodeNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"node-1.eu_west", true}, {strings.Repeat("x", 64), true},
		{"", false}, {strings.Repeat("x", 65), false}, {"a b", false}, {"é", false}, {"a/b", false}, {"a*", false},
	} {
		if got := validNodeName(tc.name); got != tc.ok {
			t.Errorf("validNodeName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
	seen := map[int]string{}
	for _, name := range []string{"a", "b", "c", "n1", "n2", "n3", "nats", "two"} {
		n := clusterOptions{name: name}.nodeNumber()
		if n < 1 || n > cluster.MaxNode {
			t.Errorf("node number of %q: %d", name, n)
		}
		if other, ok := seen[n]; ok {
			t.Errorf("%q and %q share node number %d", name, other, n)
		}
		seen[n] = name
	}
	if n := (clusterOptions{name: "a", number: 12}).nodeNumber(); n != 12 {
		t.Errorf("--node-number 12 gives %d", n)
	}
}

// ctxWithin returns a context that ends after d or with the test.
func ctxWithin(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logWatch keeps every stderr line of a process, so that a test can wait
// for a line whatever came before it.
type logWatch struct {
	p       *proc
	mu      sync.Mutex // guards lines and changed
	lines   []string
	changed chan struct{} // closed when a line is added
}

// watch starts keeping p's stderr lines; nothing else may read p.lines.
func watch(p *proc) *logWatch {
	w := &logWatch{p: p, changed: make(chan struct{})}
	go func() {
		for {
			select {
			case l := <-p.lines:
				w.mu.Lock()
				w.lines = append(w.lines, l)
				close(w.changed)
				w.changed = make(chan struct{})
				w.mu.Unlock()
			case <-p.done:
				return
			}
		}
	}()
	return w
}

// mark returns the number of lines seen so far, for wait.
func (w *logWatch) mark() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.lines)
}

// wait waits for a line at or after index from that matches re, and
// returns its submatches.
func (w *logWatch) wait(t *testing.T, from int, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(testWait)
	for {
		w.mu.Lock()
		for _, l := range w.lines[min(from, len(w.lines)):] {
			if m := re.FindStringSubmatch(l); m != nil {
				w.mu.Unlock()
				return m
			}
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-w.p.done:
			// Its stderr is complete once it has exited, while the last
			// lines may still be on their way to w.lines.
			all := strings.Split(w.p.stderr.String(), "\n")
			for _, l := range all[min(from, len(all)):] {
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			}
			t.Fatalf("process exited (%v) before printing a line matching %v\nstderr:\n%s", w.p.err, re, w.p.stderr.String())
		case <-deadline:
			t.Fatalf("no line matching %v within %v\nstderr:\n%s", re, testWait, w.p.stderr.String())
		}
	}
}

// number returns the node number the process logged on joining.
func (w *logWatch) number(t *testing.T) int {
	t.Helper()
	var n int
	fmt.Sscan(w.wait(t, 0, reLine(`msg="joined the cluster" node=\S+ number=(\d+)`))[1], &n)
	return n
}

// node is a serve process in cluster mode.
type node struct {
	*proc
	w    *logWatch
	addr string
}

// startNode starts `simplerpc serve` on a free port with the cluster flags
// in args, and returns once it listens.
func startNode(t *testing.T, args ...string) (*node, *logWatch) {
	t.Helper()
	return startNodeEnv(t, nil, args...)
}

// startNodeEnv is startNode with environment variables added ("K=V").
func startNodeEnv(t *testing.T, env []string, args ...string) (*node, *logWatch) {
	t.Helper()
	serve := append([]string{"serve", "--addr", "127.0.0.1:0", "--size", "256"}, args...)
	var p *proc
	if len(env) == 0 {
		p = startBin(t, serve...)
	} else {
		p = startProc(t, "env", append(append(env, binary), serve...)...)
	}
	w := watch(p)
	n := &node{proc: p, w: w, addr: w.wait(t, 0, listeningRE)[1]}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr of serve %v:\n%s", args, p.stderr.String())
		}
	})
	return n, w
}

// stop stops the node with SIGINT and checks that it left the cluster and
// exited 0.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.interrupt(t)
	if code := n.wait(t, testWait); code != 0 {
		t.Errorf("serve exited %d after SIGINT\nstderr:\n%s", code, n.stderr.String())
	}
	n.w.wait(t, 0, reLine(`msg=stopped`))
}

// demoClient is a client of the demo server that keeps every frame it
// gets, by opcode, and every failure.
type demoClient struct {
	*engine.Client
	id   uint64 // its net id, from opcode 3
	node string // its node's name, from opcode 3

	mu       sync.Mutex // guards frames, failures, checked and changed
	frames   []frame
	failures []handler.Error
	checked  int // failures wantFailure or skipFailures has looked at
	changed  chan struct{}
}

type frame struct {
	op   codec.Opcode
	data string
}

// dialDemo connects to a demo server at addr and asks it who it is.
func dialDemo(t *testing.T, ctx context.Context, addr string) *demoClient {
	t.Helper()
	c := &demoClient{changed: make(chan struct{})}
	r := handler.NewRouter()
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		c.add(func() { c.frames = append(c.frames, frame{op, string(data)}) })
		return nil
	})
	handler.Handle(r, codec.OpFailure, func(_ handler.Conn, f handler.Error) error {
		c.add(func() { c.failures = append(c.failures, f) })
		return nil
	})
	cl, err := engine.Dial(ctx, addr, r)
	if err != nil {
		t.Fatal(err)
	}
	c.Client = cl
	t.Cleanup(func() { _ = cl.Close() })
	var who whoami
	if err := cl.Call(ctx, opWhoami, nil, &who); err != nil {
		t.Fatal(err)
	}
	c.id, c.node = who.NetID, who.Node
	return c
}

func (c *demoClient) add(fn func()) {
	c.mu.Lock()
	fn()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// relay asks the server to send data to net id to on opcode 2.
func (c *demoClient) relay(t *testing.T, to uint64, data string) {
	t.Helper()
	if err := c.SendRaw(opRelay, []byte(fmt.Sprintf(`{"to":%d,"data":%s}`, to, data))); err != nil {
		t.Fatal(err)
	}
}

// until waits until cond, called under the client's lock, holds. cond may
// look at other, whose frames wake the wait too.
func (c *demoClient) until(t *testing.T, ctx context.Context, what string, cond func() bool, other ...*demoClient) {
	t.Helper()
	for {
		var otherChanged chan struct{}
		if len(other) > 0 {
			other[0].mu.Lock()
			otherChanged = other[0].changed
			other[0].mu.Unlock()
		}
		c.mu.Lock()
		ok, changed := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-otherChanged:
		case <-ctx.Done():
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("client %d of %s: no %s: %v\nframes %v\nfailures %v", c.id, c.node, what, ctx.Err(), c.frames, c.failures)
		}
	}
}

// wantFrame waits for a frame op data.
func (c *demoClient) wantFrame(t *testing.T, ctx context.Context, op codec.Opcode, data string) {
	t.Helper()
	c.until(t, ctx, fmt.Sprintf("frame %d %s", op, data), func() bool { return c.count(op, data) > 0 })
}

// count returns how many frames op data the client got; under its lock.
func (c *demoClient) count(op codec.Opcode, data string) int {
	n := 0
	for _, f := range c.frames {
		if f.op == op && f.data == data {
			n++
		}
	}
	return n
}

// wantFailure waits for the next failure not looked at yet, which must
// have the reason and a message containing msg, and returns how long it
// took to come.
func (c *demoClient) wantFailure(t *testing.T, ctx context.Context, reason, msg string) time.Duration {
	t.Helper()
	return c.wantFailureSkip(t, ctx, nil, reason, msg)
}

// wantFailureSkip is wantFailure passing over the failures for which skip
// (if not nil) is true.
func (c *demoClient) wantFailureSkip(t *testing.T, ctx context.Context, skip func(handler.Error) bool, reason, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	var f handler.Error
	for {
		c.until(t, ctx, "failure "+reason, func() bool { return len(c.failures) > c.checked })
		c.mu.Lock()
		f = c.failures[c.checked]
		c.checked++
		c.mu.Unlock()
		if skip == nil || !skip(f) {
			break
		}
	}
	if f.Reason != reason || !strings.Contains(f.Message, msg) {
		t.Fatalf("client %d of %s: failure %s %q, want %s containing %q", c.id, c.node, f.Reason, f.Message, reason, msg)
	}
	return time.Since(start)
}

// skipFailures marks every failure so far as looked at, and returns how
// many there are.
func (c *demoClient) skipFailures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked = len(c.failures)
	return c.checked
}

// frameCounts returns the client's frames counted by opcode and object.
func (c *demoClient) frameCounts() map[frame]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[frame]int{}
	for _, f := range c.frames {
		m[f]++
	}
	return m
}

// jsonText returns v as compact JSON.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
