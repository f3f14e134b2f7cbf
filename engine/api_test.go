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

// TestSendTooLargeForSize: once the size is known, a frame that cannot fit
// is an error at send time, not a frame dropped later on the loop.
func TestSendTooLargeForSize(t *testing.T) {
	t.Parallel()
	ids := make(chan uint64, 1)
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	<-cl.Ready()
	big := map[string]string{"x": strings.Repeat("x", 200)}
	if err := cl.Send(0, big); !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Fatalf("client send: %v", err)
	}
	if err := srv.Send(<-ids, 0, big); !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Fatalf("server send: %v", err)
	}
	if err := srv.SendAll(0, big); !errors.Is(err, codec.ErrFrameTooLarge) && err != nil {
		t.Fatalf("send all: %v", err)
	}
}

// TestRefusedClientSeesWhy: a client refused because the server is full
// closes with ErrServerFull and the server's failure, not a bare protocol
// error.
func TestRefusedClientSeesWhy(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echoRouter(), engine.WithMaxConns(1))
	first, err := engine.Dial(testContext(t), srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { first.Close(); <-first.Done() }()
	<-first.Ready()
	// Dial returns the refusal itself, not a client that closes later.
	second, err := engine.Dial(testContext(t), srv.Addr().String(), handler.NewRouter())
	if second != nil || !errors.Is(err, engine.ErrServerFull) || handler.ReasonOf(err) != engine.ReasonServerFull {
		t.Fatalf("Dial = %v, %v (reason %q), want the ServerFull refusal", second, err, handler.ReasonOf(err))
	}
}

// TestSendAllRawAndNoHTMLEscape relays an object as received, and frames
// keep '<' and '&' as they are.
func TestSendAllRawAndNoHTMLEscape(t *testing.T) {
	t.Parallel()
	ready := make(chan struct{}, 1)
	srv := startServer(t, handler.NewRouter(), engine.WithOnConnect(func(handler.Conn) { ready <- struct{}{} }))
	rec := newRecorder()
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		rec.add(string(data))
		return nil
	})
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	<-ready
	if err := srv.SendAllRaw(1, []byte(` {"a": [1, 2], "b": "<x> & y"} `)); err != nil {
		t.Fatal(err)
	}
	if err := srv.SendAll(1, map[string]string{"b": "<x> & y"}); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, 2)
	if got[0] != `{"a": [1, 2], "b": "<x> & y"}` || got[1] != `{"b":"<x> & y"}` {
		t.Fatalf("got %q", got)
	}
	if err := srv.SendAllRaw(1, []byte(`[1]`)); !errors.Is(err, codec.ErrNotObject) {
		t.Fatalf("non-object: %v", err)
	}
}

// TestServerDoneAndErr: Done closes and Err says why once the server stops.
func TestServerDoneAndErr(t *testing.T) {
	t.Parallel()
	srv, err := engine.NewServer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if srv.Err() != nil {
		t.Fatalf("Err while running: %v", srv.Err())
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	case <-time.After(testTimeout):
		t.Fatal("Done not closed")
	}
	if !errors.Is(srv.Err(), engine.ErrServerClosed) {
		t.Fatalf("Err: %v", srv.Err())
	}
}
