package engine_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestConnContext checks the connection's context: it carries the
// connection, is live while the connection is, and is cancelled with the
// disconnect reason as its cause, on the server (the peer left: io.EOF)
// and on the client (Close: ErrLocalClose).
func TestConnContext(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ctxs := make(chan context.Context, 1)
	r := handler.NewRouter()
	r.OnCall(1, func(c handler.Conn, _ []byte) (any, error) {
		hctx := c.Context()
		if got, ok := handler.ConnFrom(hctx); !ok || got.ID() != c.ID() {
			return nil, errors.New("the context does not carry the connection")
		}
		if hctx.Err() != nil {
			return nil, hctx.Err()
		}
		ctxs <- hctx
		return nil, nil
	})
	srv := startServer(t, r)
	cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Call(ctx, 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	sctx := <-ctxs
	cc := cl.Conn()
	cctx := cc.Context()
	if c, ok := handler.ConnFrom(cctx); !ok || c != cc {
		t.Errorf("the client connection's context carries %v, %v", c, ok)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]context.Context{"server": sctx, "client": cctx, "Client": cl.Context()} {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("the %s connection's context was not cancelled", name)
		}
	}
	if cause := context.Cause(sctx); !errors.Is(cause, io.EOF) {
		t.Errorf("server context's cause %v, want io.EOF", cause)
	}
	if cause := context.Cause(cctx); !errors.Is(cause, engine.ErrLocalClose) {
		t.Errorf("client context's cause %v, want ErrLocalClose", cause)
	}
	if cause := context.Cause(cl.Context()); !errors.Is(cause, engine.ErrLocalClose) {
		t.Errorf("Client context's cause %v, want ErrLocalClose", cause)
	}
}

type user struct{ name string }

// TestKey keeps typed state on a server connection and a client's, with
// two keys of the same name that do not clash.
func TestKey(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	userKey, otherKey := handler.NewKey[*user]("user"), handler.NewKey[*user]("user")
	countKey := handler.NewKey[int]("count")
	got := make(chan string, 1)
	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, _ []byte) error {
		n, _ := countKey.Get(c)
		countKey.Set(c, n+1)
		if n == 0 {
			userKey.Set(c, &user{"ada"})
			return nil
		}
		u, ok := userKey.Get(c)
		_, clash := otherKey.Get(c)
		if !ok || clash || n != 1 {
			got <- "wrong state"
			return nil
		}
		got <- u.name
		return nil
	})
	srv := startServer(t, r)
	cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	for range 2 {
		if err := cl.Send(1, struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case name := <-got:
		if name != "ada" {
			t.Errorf("state %q, want ada", name)
		}
	case <-ctx.Done():
		t.Fatal("no frame")
	}
	cc := cl.Conn()
	userKey.Set(cc, &user{"client"})
	if u, ok := userKey.Get(cc); !ok || u.name != "client" {
		t.Errorf("client state %v %v", u, ok)
	}
	userKey.Delete(cc)
	if _, ok := userKey.Get(cc); ok {
		t.Error("a deleted key is still there")
	}
}

// TestHandlerJoinsGroups has a call handler join its own connection to a
// room through ServerOf, with no server captured in a closure: then the
// server lists the room's members and the connection's groups, and an empty
// group name is an error everywhere.
func TestHandlerJoinsGroups(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	type join struct {
		Room string `json:"room"`
	}
	r := handler.NewRouter()
	handler.HandleCall(r, 1, func(c handler.Conn, j join) (any, error) {
		return nil, engine.ServerOf(c).Group(j.Room).Join(c.ID())
	})
	srv := startServer(t, r)
	d, err := engine.NewDialer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	var ids []uint64
	for _, room := range []string{"lobby", "lobby", "kitchen"} {
		cl, err := d.Dial(ctx, srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Call(ctx, 1, join{Room: room}, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, srv.Conns()[len(srv.Conns())-1].ID())
	}
	var members []uint64
	for _, c := range srv.Group("lobby").Members() {
		members = append(members, c.ID())
	}
	slices.Sort(members)
	if len(members) != 2 || srv.Group("kitchen").Len() != 1 {
		t.Errorf("lobby %v, kitchen %d members", members, srv.Group("kitchen").Len())
	}
	for _, c := range srv.Conns() {
		if g := srv.Groups(c.ID()); len(g) != 1 {
			t.Errorf("net id %d is in %v", c.ID(), g)
		}
	}
	if err := srv.Group("").Join(ids[0]); err == nil {
		t.Error("joining the empty group succeeded")
	}
	if err := srv.Group("").Send(2, struct{}{}); err == nil {
		t.Error("sending to the empty group succeeded")
	}
	if n := srv.Group("").Len(); n != 0 {
		t.Errorf("the empty group has %d members", n)
	}
	// A client's connection has no server.
	cl, _ := d.Dial(ctx, srv.Addr().String())
	if engine.ServerOf(cl.Conn()) != nil {
		t.Error("ServerOf a client is not nil")
	}
}

// TestReconnectRestoresSessionFirst is the chat line sent while the server
// restarts: the client's reconnect callback re-joins the room before the
// held line is sent, so the server accepts it instead of refusing it.
func TestReconnectRestoresSessionFirst(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	type join struct {
		Room string `json:"room"`
	}
	type line struct {
		Room string `json:"room"`
		Text string `json:"text"`
	}
	var mu sync.Mutex
	var accepted []string
	r := handler.NewRouter()
	handler.HandleCall(r, 1, func(c handler.Conn, j join) (any, error) {
		return nil, engine.ServerOf(c).Group(j.Room).Join(c.ID())
	})
	handler.Handle(r, 2, func(c handler.Conn, l line) error {
		if !slices.Contains(engine.ServerOf(c).Groups(c.ID()), l.Room) {
			return handler.ArgumentValueError("not in room " + l.Room)
		}
		mu.Lock()
		accepted = append(accepted, l.Text)
		mu.Unlock()
		engine.ServerOf(c).Group(l.Room).Send(3, l)
		return nil
	})
	srv := startServer(t, r)
	addr := srv.Addr().String()

	failures := make(chan string, 4)
	heard := make(chan string, 4)
	cr := handler.NewRouter()
	handler.Handle(cr, codec.OpFailure, func(_ handler.Conn, f *handler.Error) error { failures <- f.Message; return nil })
	handler.Handle(cr, 3, func(_ handler.Conn, l line) error { heard <- l.Text; return nil })
	restored := make(chan error, 4)
	dropped := make(chan struct{}, 4)
	cl, err := engine.Dial(ctx, addr, cr, engine.WithReconnect(5*time.Millisecond, 20*time.Millisecond,
		func(c handler.Conn) { restored <- c.Call(c.Context(), 1, join{Room: "lobby"}, nil) }),
		engine.WithOnDisconnect(func(handler.Conn, error) { dropped <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	if err := cl.Call(ctx, 1, join{Room: "lobby"}, nil); err != nil {
		t.Fatal(err)
	}
	// The server drops the connection: the client reconnects, and the line
	// it sends in between is held.
	sc := srv.Conns()[0]
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dropped: // the client knows: what it sends now is held
	case <-ctx.Done():
		t.Fatal("the client did not see the connection drop")
	}
	if err := cl.Send(2, line{Room: "lobby", Text: "sent while away"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-restored:
		if err != nil {
			t.Fatalf("re-join: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no reconnection")
	}
	select {
	case text := <-heard:
		if text != "sent while away" {
			t.Errorf("heard %q", text)
		}
	case f := <-failures:
		t.Fatalf("the held line was refused: %s", f)
	case <-ctx.Done():
		t.Fatal("the held line never came back")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 {
		t.Errorf("accepted %q", accepted)
	}
}

// TestRetryFirstDial starts a client before its server: with
// WithRetryFirstDial, Dial waits, retries with backoff, and connects once
// the server listens; without it, Dial fails at once.
func TestRetryFirstDial(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	if _, err := engine.Dial(ctx, addr, handler.NewRouter()); err == nil {
		t.Fatal("a dial to nothing succeeded")
	}
	dialed := make(chan error, 1)
	var cl *engine.Client
	go func() {
		var err error
		cl, err = engine.Dial(ctx, addr, handler.NewRouter(), engine.WithRetryFirstDial(),
			engine.WithReconnect(5*time.Millisecond, 20*time.Millisecond, nil))
		dialed <- err
	}()
	srv, err := engine.NewServer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("dial with retries: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("dial with retries did not return")
	}
	select {
	case <-cl.Ready():
	case <-ctx.Done():
		t.Fatal("not ready")
	}
	cl.Close()
	<-cl.Done()

	// The context bounds the retries.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := engine.Dial(short, "127.0.0.1:1", handler.NewRouter(), engine.WithRetryFirstDial()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("retries past the context: %v", err)
	}
}
