// This file starts a server that stops with the test.

package testkit

import (
	"context"
	"testing"
)

// Server is what [Start] starts: an engine.Server.
type Server interface {
	Shutdown(ctx context.Context) error
}

// Start starts srv on addr (127.0.0.1:0, or a tls:// or ws:// address)
// and shuts it down when the test ends, failing the test if the shutdown
// fails or takes longer than [Timeout]. It returns srv.
func Start[S Server](t testing.TB, srv S, addr string) S {
	t.Helper()
	var err error
	switch s := any(srv).(type) {
	case interface {
		Start(context.Context, string, ...string) error
	}:
		err = s.Start(context.Background(), addr) // an engine.Server
	default:
		t.Fatalf("testkit: %T has no Start(ctx, addr)", srv)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}
