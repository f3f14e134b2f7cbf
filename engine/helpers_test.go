package engine_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
)

// testTimeout bounds every wait in these tests.
const testTimeout = testkit.Timeout

// testContext returns a context that ends with the test or after
// testTimeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	return testkit.Context(t, testTimeout)
}

// startServer starts a server on 127.0.0.1:0 and shuts it down when the
// test ends.
func startServer(t *testing.T, r *handler.Router, opts ...engine.ServerOption) *engine.Server {
	t.Helper()
	return startServerOn(t, "127.0.0.1:0", r, opts...)
}

// startServerOn starts a server on addr (a tls:// or ws:// one too) and
// shuts it down when the test ends.
func startServerOn(t *testing.T, addr string, r *handler.Router, opts ...engine.ServerOption) *engine.Server {
	t.Helper()
	srv, err := engine.NewServer(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Start(t, srv, addr)
}

// echoRouter echoes every application opcode's object on the same opcode,
// and answers opcode 5 with ArgumentMissing: the contract of pypeer.py's
// client mode.
func echoRouter() *handler.Router {
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		if op == 5 {
			return handler.ArgumentMissing("Expected argument 'argname' in opcode 5")
		}
		return c.SendRaw(op, data)
	})
	return r
}

// rawPeer is a plain peer that reads and writes frames by hand: testkit's
// raw protocol peer (testkit.Pad, testkit.ReadFrame) under the names these
// tests use.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	size int
}

// dialRaw returns a raw peer connected to addr.
func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	p := testkit.Dial(t, addr)
	return &rawPeer{t: t, conn: p.Conn, r: p.R}
}

// greet reads the -2 frame of size n.
func (p *rawPeer) greet(n int) {
	p.t.Helper()
	p.size = n
	op, obj := p.read()
	if op != codec.OpMessageSize || !strings.Contains(string(obj), `"message_size":`) {
		p.t.Fatalf("first frame: op %d %s", op, obj)
	}
}

func (p *rawPeer) write(text string) {
	p.t.Helper()
	if _, err := p.conn.Write(testkit.Pad(text, p.size)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) read() (codec.Opcode, []byte) {
	p.t.Helper()
	op, obj, err := testkit.ReadFrame(p.r, p.size)
	if err != nil {
		p.t.Fatalf("read frame: %v", err)
	}
	return op, obj
}

// expectEOF waits for the server to close the connection.
func (p *rawPeer) expectEOF() {
	p.t.Helper()
	buf := make([]byte, p.size)
	if _, err := io.ReadFull(p.r, buf); !errors.Is(err, io.EOF) {
		p.t.Fatalf("want EOF, got %v (%q)", err, buf)
	}
}

// recorder collects frames received by a callback, safely.
type recorder struct {
	mu     sync.Mutex
	frames []string
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1<<16)} }

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.frames = append(r.frames, s)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// wait blocks until n frames arrived and returns them.
func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		r.mu.Lock()
		if len(r.frames) >= n {
			out := append([]string(nil), r.frames...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out: %d of %d frames: %q", len(r.frames), n, r.frames)
			return nil
		}
	}
}
