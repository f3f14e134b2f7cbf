package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// tokenAuth accepts {"token":"secret-N"} as identity "user-N".
func tokenAuth(release <-chan struct{}) engine.Authenticator {
	return func(ctx context.Context, _ handler.Conn, creds []byte) (string, error) {
		if release != nil {
			select {
			case <-release:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		var m struct {
			Token string `json:"token"`
		}
		if err := codec.Unmarshal(creds, &m); err != nil || !strings.HasPrefix(m.Token, "secret-") {
			return "", handler.ArgumentValueError("bad token")
		}
		return "user-" + strings.TrimPrefix(m.Token, "secret-"), nil
	}
}

// TestAuth: a client with credentials authenticates first, then is a
// connection like any other, found by its identity; a client with wrong
// credentials ends with ErrUnauthorized and does not reconnect.
func TestAuth(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	idents := make(chan string, 4)
	srv := startServer(t, echoRouter(), engine.WithAuth(tokenAuth(nil), testTimeout),
		engine.WithOnConnect(func(c handler.Conn) { idents <- engine.IdentityOf(c) }))
	addr := srv.Addr().String()

	got := make(chan string, 4)
	r := handler.NewRouter()
	r.On(1, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	cl, err := engine.Dial(ctx, addr, r, engine.WithCredentials(map[string]string{"token": "secret-7"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	if err := cl.Send(1, map[string]int{"n": 1}); err != nil { // held, sent after the credentials
		t.Fatal(err)
	}
	select {
	case id := <-idents:
		if id != "user-7" {
			t.Fatalf("identity %q", id)
		}
	case <-ctx.Done():
		t.Fatal("no connect")
	}
	if s := <-got; s != `{"n":1}` {
		t.Fatalf("echo %s", s)
	}
	if cs := srv.ConnsOf("user-7"); len(cs) != 1 || engine.IdentityOf(cs[0]) != "user-7" {
		t.Fatalf("ConnsOf: %v", cs)
	}

	if id := engine.IdentityOf(cl.Conn()); id != "user-7" {
		t.Errorf("the client's IdentityOf = %q, want the server's acknowledgement, user-7", id)
	}
	// Dial returns the refusal, even for a client that would reconnect.
	bad, err := engine.Dial(ctx, addr, handler.NewRouter(), engine.WithCredentials(map[string]string{"token": "wrong"}),
		engine.WithReconnect(5*time.Millisecond, 20*time.Millisecond, nil))
	if bad != nil || !errors.Is(err, engine.ErrUnauthorized) {
		t.Errorf("Dial with a wrong token = %v, %v, want ErrUnauthorized", bad, err)
	}
	if srv.Stats().Conns != 1 {
		t.Errorf("%d connections, want 1", srv.Stats().Conns)
	}
}

// TestAuthRawPeer speaks to an authenticating server by hand: frames and
// calls before the -9 frame are refused with Unauthorized and not
// dispatched, a send-to-all does not reach it; frames right after the -9
// frame wait for the slow verdict and are then handled in order. A peer
// that never authenticates is closed at the deadline with the failure, and
// no callback runs for it.
func TestAuthRawPeer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	release := make(chan struct{})
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(128),
		engine.WithAuth(tokenAuth(release), 300*time.Millisecond))...)
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	p.write(`0{"early":1}`)
	if op, obj := p.read(); op != codec.OpFailure || !strings.Contains(string(obj), engine.ReasonUnauthorized) {
		t.Fatalf("a frame before authenticating: %d %s", op, obj)
	}
	p.write(`-3{"id":5,"op":1,"data":{}}`)
	if op, obj := p.read(); op != codec.OpReplyFailure || !strings.Contains(string(obj), `"id":5`) {
		t.Fatalf("a call before authenticating: %d %s", op, obj)
	}
	if err := srv.SendAll(1, map[string]int{"all": 1}); err != nil {
		t.Fatal(err)
	}
	p.write(`-9{"token":"secret-1"}`)
	p.write(`0{"after":1}`)
	p.write(`0{"after":2}`)
	close(release) // the verdict comes after the frames that followed
	if op, obj := p.read(); op != codec.OpAuth || string(obj) != `{"identity":"user-1"}` {
		t.Fatalf("the answer to the credentials: %d %s", op, obj)
	}
	for i := 1; i <= 2; i++ {
		if op, obj := p.read(); op != 0 || !strings.Contains(string(obj), `"after"`) {
			t.Fatalf("frame %d after the credentials: %d %s", i, op, obj)
		}
	}
	ev.next(ctx, t) // the connect callback ran, once authenticated

	silent := dialRaw(t, srv.Addr().String())
	silent.greet(128)
	if op, obj := silent.read(); op != codec.OpFailure || !strings.Contains(string(obj), engine.ReasonUnauthorized) {
		t.Fatalf("the deadline: %d %s", op, obj)
	}
	silent.expectEOF()
	select {
	case c := <-ev.opened:
		t.Fatalf("connect callback for a peer that never authenticated (%d)", c.ID())
	case e := <-ev.closed:
		t.Fatalf("disconnect callback for a peer that never authenticated: %v", e.reason)
	default:
	}
}
