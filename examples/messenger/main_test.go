package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}

// TestBoth runs the example as `go run ./examples/messenger` does and
// checks the original README's exchange.
func TestBoth(t *testing.T) {
	var out bytes.Buffer
	if err := run(nil, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for line, n := range map[string]int{
		`client: got RPC 1 with: {"some_data":"this is sent to every connection"}`:       1,
		`client: got RPC 1 with: {"some_data":"this is sent to whoever just connected"}`: 2,
		`server: got RPC 0 from net id 1 with: {"some_data":123}`:                        3,
		`client: failure ArgumentMissing: Expected argument 'argname' in opcode 2`:       1,
		`client: connected, message size learned from the server`:                        1,
		`server: net id 1 disconnected`:                                                  1,
	} {
		if c := strings.Count(got, line); c != n {
			t.Errorf("%q appears %d times, want %d\n%s", line, c, n, got)
		}
	}
}

// TestSeparateRoles runs the server role and the client role on their own,
// as two processes would, over a real socket.
func TestSeparateRoles(t *testing.T) {
	var sout bytes.Buffer
	p := &printer{w: &sout}
	srv, err := newServer(p, 256)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cout bytes.Buffer
	done := make(chan struct{})
	cl, err := dialClient(t.Context(), &printer{w: &cout}, srv.Addr().String(), 3, done)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
	cl.Close()
	<-cl.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cout.String(), "failure ArgumentMissing") {
		t.Errorf("client output:\n%s", cout.String())
	}
	if !strings.Contains(sout.String(), `got RPC 0 from net id 1 with: {"some_data":123}`) {
		t.Errorf("server output:\n%s", sout.String())
	}
}

// TestBadFlags: an unknown role is an error, not a hang.
func TestBadFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"-role", "nope"}, &out); err == nil {
		t.Fatal("unknown role accepted")
	}
}
