package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestAuthFailureReason: an authenticator's error reaches the peer by the
// rule handlers' errors follow (handler.Failure): an *handler.Error or a
// Reasoner, wrapped or not, with its own reason and message; any other
// error as Unauthorized with a generic message, its text kept local. Dial
// of a client refused so returns ErrUnauthorized wrapping the server's
// failure, and the client does not reconnect.
func TestAuthFailureReason(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name         string
		err          error
		reason, text string
	}{
		{"handler.Error", &handler.Error{Reason: "TokenExpired", Message: "the token expired at 12:00"}, "TokenExpired", "the token expired at 12:00"},
		{"wrapped handler.Error", fmt.Errorf("db: %w", &handler.Error{Reason: "NoSuchUser", Message: "who?"}), "NoSuchUser", "who?"},
		{"wrapped Reasoner", fmt.Errorf("check: %w", handler.ArgumentValueError("bad token")), handler.ReasonArgumentValueError, "bad token"},
		{"plain error", errors.New("secret detail: db password wrong"), engine.ReasonUnauthorized, "Authentication failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			var calls atomic.Int64
			srv := startServer(t, echoRouter(), engine.WithAuth(func(context.Context, handler.Conn, []byte) (string, error) {
				calls.Add(1)
				return "", c.err
			}, testTimeout))
			p := dialRaw(t, srv.Addr().String())
			p.greet(1024)
			p.write(`-9{"token":"t"}`)
			op, obj := p.read()
			var f handler.Error
			if op != codec.OpFailure || json.Unmarshal(obj, &f) != nil || f.Reason != c.reason || f.Message != c.text {
				t.Fatalf("raw peer got op %d %s; want a failure %q %q", op, obj, c.reason, c.text)
			}
			p.expectEOF()

			// Dial returns the refusal, the server's failure in it.
			_, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(), engine.WithCredentials(map[string]string{"token": "t"}),
				engine.WithReconnect(time.Millisecond, 5*time.Millisecond, nil))
			if !errors.Is(err, engine.ErrUnauthorized) || handler.ReasonOf(err) != c.reason {
				t.Fatalf("Dial: %v (reason %q); want ErrUnauthorized with the server's reason %q", err, handler.ReasonOf(err), c.reason)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("the authenticator ran %d times, want 2: the client reconnected", n)
			}
		})
	}
}

// TestAuthFailureAfterVerdict: once the server has answered the
// credentials (-9), a failure followed by a close is not a refusal: the
// client reconnects, and authenticates again.
func TestAuthFailureAfterVerdict(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	conns := make(chan handler.Conn, 4)
	srv := startServer(t, echoRouter(), engine.WithAuth(tokenAuth(nil), testTimeout),
		engine.WithOnConnect(func(c handler.Conn) { conns <- c }))
	failed := make(chan string, 4)
	r := handler.NewRouter()
	r.On(codec.OpFailure, func(_ handler.Conn, data []byte) error { failed <- string(data); return nil })
	cl, err := engine.Dial(ctx, srv.Addr().String(), r, engine.WithCredentials(map[string]string{"token": "secret-1"}),
		engine.WithReconnect(time.Millisecond, 5*time.Millisecond, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	first := <-conns
	if err := cl.Send(5, map[string]int{}); err != nil { // the echo router fails opcode 5
		t.Fatal(err)
	}
	select {
	case <-failed:
	case <-ctx.Done():
		t.Fatal("no failure")
	}
	first.Close()
	select {
	case c := <-conns:
		if engine.IdentityOf(c) != "user-1" {
			t.Fatalf("reconnected as %q", engine.IdentityOf(c))
		}
	case <-cl.Done():
		t.Fatalf("the client ended (%v) instead of reconnecting", cl.Err())
	case <-ctx.Done():
		t.Fatal("no reconnection")
	}
}
