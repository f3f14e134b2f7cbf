// This file starts a server that stops with the test.

package testkit

import (
	"context"
	"testing"
)

// Server is what [Start] starts: an engine.Server, a cluster.Node.
type Server interface {
	Start(ctx context.Context, addr string) error
	Shutdown(ctx context.Context) error
}

// Start starts srv on addr (127.0.0.1:0, or a tls:// or ws:// address)
// and shuts it down when the test ends, failing the test if the shutdown
// fails or takes longer than [Timeout]. It returns srv.
func Start[S Server](t testing.TB, srv S, addr string) S {
	t.Helper()
	if err := srv.Start(context.Background(), addr); err != nil {
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
