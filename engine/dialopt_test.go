package engine_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestDialerPerDialCredentials: the clients of one Dialer log in as
// different users with WithCredentials given to Dial; a client given none
// uses the dialer's; a wrong one is refused by Dial itself while the
// others stay.
func TestDialerPerDialCredentials(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv := startServer(t, echoRouter(), engine.WithAuth(tokenAuth(nil), testTimeout))
	addr := srv.Addr().String()
	d, err := engine.NewDialer(handler.NewRouter(), engine.WithCredentials(map[string]string{"token": "secret-0"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var clients []*engine.Client
	for i := 1; i <= 3; i++ {
		cl, err := d.Dial(ctx, addr, engine.WithCredentials(map[string]string{"token": fmt.Sprintf("secret-%d", i)}),
			engine.WithLocalAddr(fmt.Sprintf("127.0.0.%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
	}
	plain, err := d.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	clients = append(clients, plain)
	for i, cl := range clients {
		want := fmt.Sprintf("user-%d", (i+1)%4)
		if id := engine.IdentityOf(cl.Conn()); id != want {
			t.Errorf("client %d: IdentityOf = %q, want %q", i, id, want)
		}
		if cs := srv.ConnsOf(want); len(cs) != 1 {
			t.Errorf("ConnsOf(%q) = %d connections, want 1", want, len(cs))
		}
	}
	if got := clients[1].RemoteAddr(); got != addr {
		t.Errorf("RemoteAddr %q, want %q", got, addr)
	}
	if cs := srv.ConnsOf("user-2"); len(cs) == 1 && cs[0].RemoteAddr()[:10] != "127.0.0.2:" {
		t.Errorf("user-2 connected from %s, want 127.0.0.2 (WithLocalAddr)", cs[0].RemoteAddr())
	}
	bad, err := d.Dial(ctx, addr, engine.WithCredentials(map[string]string{"token": "wrong"}))
	if bad != nil || !errors.Is(err, engine.ErrUnauthorized) {
		t.Fatalf("Dial with a wrong token = %v, %v, want ErrUnauthorized", bad, err)
	}
	for i, cl := range clients {
		if cl.Err() != nil {
			t.Errorf("client %d ended: %v", i, cl.Err())
		}
	}
}

// TestDialNotSimplerpc: Dial to a port that is no simplerpc server (an
// HTTP server, which waits for a request and says nothing) returns
// ErrProtocol within the dial timeout, instead of a client whose first
// call waits its whole deadline.
func TestDialNotSimplerpc(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	hs := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(hs.Close)
	start := time.Now()
	cl, err := engine.Dial(ctx, hs.Listener.Addr().String(), handler.NewRouter(), engine.WithDialTimeout(300*time.Millisecond))
	if cl != nil || !errors.Is(err, engine.ErrProtocol) {
		t.Fatalf("Dial to an HTTP server = %v, %v, want ErrProtocol", cl, err)
	}
	if !strings.Contains(err.Error(), "message size") {
		t.Errorf("the reason does not say what did not come: %v", err)
	}
	if took := time.Since(start); took > testTimeout/2 {
		t.Errorf("Dial took %v with a 300ms dial timeout", took)
	}
}
