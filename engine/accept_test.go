package engine_test

// This file checks that a server serves a listener made elsewhere
// (StartOn) and closes it when it shuts down.

import (
	"context"
	"net"
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
