package engine_test

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
)

// TestStartOn serves a listener made elsewhere, as a service manager hands
// one over: the server serves it, reports its address, and closes it when
// it shuts down.
func TestStartOn(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.NewServer(echoRouter(), engine.WithMessageSize(128))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.StartOn(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	if srv.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr %v, want %v", srv.Addr(), ln.Addr())
	}
	p := dialRaw(t, ln.Addr().String())
	p.greet(128)
	p.write(`0{"n":1}`)
	if op, obj := p.read(); op != 0 || string(obj) != `{"n":1}` {
		t.Fatalf("echo %d %s", op, obj)
	}
	if err := srv.Shutdown(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the listener is still open after Shutdown")
	}
}

// TestStartWarnsWithoutSpareP: a server whose event loops take every P
// says so in its log when it starts (schedulerNote).
func TestStartWarnsWithoutSpareP(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	srv, err := engine.NewServer(echoRouter(), engine.WithMessageSize(128),
		engine.WithEventLoops(runtime.GOMAXPROCS(0)), engine.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(testContext(t), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "GOMAXPROCS") {
		t.Errorf("log %q: no warning that the loops take every P", got)
	}
}
