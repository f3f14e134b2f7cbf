// This file tests that a server's connection and a client's are one kind
// of connection: the package's helpers answer alike for both, and a
// client's reconnection is a new connection.

package engine_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// connPair is a TLS server that requires credentials and a client
// connected to it, with each side's connection as its connect callback
// got it.
type connPair struct {
	srv    *engine.Server
	cl     *engine.Client
	server handler.Conn // the server's connection to the client
	client handler.Conn // the client's connection to the server
}

func newConnPair(t *testing.T, ctx context.Context) *connPair {
	t.Helper()
	p := newPKI(t)
	sconns, cconns := make(chan handler.Conn, 1), make(chan handler.Conn, 1)
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithAuth(tokenAuth(nil), testTimeout),
		engine.WithOnConnect(func(c handler.Conn) { sconns <- c }))
	cl, err := engine.Dial(ctx, "tls://"+srv.Addr().String(), handler.NewRouter(), engine.WithTLS(p.clientConfig(false)),
		engine.WithCredentials(map[string]string{"token": "secret-3"}),
		engine.WithOnConnect(func(c handler.Conn) { cconns <- c }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	pair := &connPair{srv: srv, cl: cl}
	for _, got := range []struct {
		ch  chan handler.Conn
		to  *handler.Conn
		who string
	}{{sconns, &pair.server, "server"}, {cconns, &pair.client, "client"}} {
		select {
		case *got.to = <-got.ch:
		case <-ctx.Done():
			t.Fatalf("no %s connect callback", got.who)
		}
	}
	if c := cl.Conn(); c != pair.client {
		t.Fatalf("Client.Conn = %v, not the connection its connect callback got (%v)", c, pair.client)
	}
	if c, ok := srv.Conn(pair.server.ID()); !ok || c != pair.server {
		t.Fatalf("Server.Conn = %v, %v, not the connection its connect callback got", c, ok)
	}
	return pair
}

// TestConnSameBothSides asks the package's helpers and the connection's
// own methods the same questions of a server's connection and of a
// client's, and closes each in turn: the answers agree, but for what
// tells the two apart (ServerOf, the peer's address).
func TestConnSameBothSides(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	for _, side := range []struct {
		name   string
		pick   func(*connPair) (c, peer handler.Conn)
		server func(*connPair) *engine.Server
		remote func(*connPair, string) bool
	}{
		{"server", func(p *connPair) (handler.Conn, handler.Conn) { return p.server, p.client },
			func(p *connPair) *engine.Server { return p.srv },
			func(p *connPair, addr string) bool {
				host, port, err := net.SplitHostPort(addr)
				return err == nil && host == "127.0.0.1" && addr != p.srv.Addr().String() && port != "0"
			}},
		{"client", func(p *connPair) (handler.Conn, handler.Conn) { return p.client, p.server },
			func(*connPair) *engine.Server { return nil },
			func(p *connPair, addr string) bool { return addr == p.srv.Addr().String() }},
	} {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			pair := newConnPair(t, ctx)
			c, peer := side.pick(pair)
			if c.ID() == 0 {
				t.Error("ID is 0")
			}
			if id := engine.IdentityOf(c); id != "user-3" {
				t.Errorf("IdentityOf = %q, want user-3", id)
			}
			st, ok := engine.TLSState(c)
			if !ok || !st.HandshakeComplete || st.NegotiatedProtocol != "simplerpc" {
				t.Errorf("TLSState = complete %v, ALPN %q, %v", st.HandshakeComplete, st.NegotiatedProtocol, ok)
			}
			if s := engine.ServerOf(c); s != side.server(pair) {
				t.Errorf("ServerOf = %p, want %p", s, side.server(pair))
			}
			if addr := c.RemoteAddr(); !side.remote(pair, addr) {
				t.Errorf("RemoteAddr = %q (server %s)", addr, pair.srv.Addr())
			}

			key := handler.NewKey[int]("n")
			key.Set(c, 7)
			if n, ok := key.Get(c); !ok || n != 7 {
				t.Errorf("key.Get = %d, %v after Set(7)", n, ok)
			}
			if _, ok := key.Get(peer); ok {
				t.Error("the peer's connection has the key too")
			}
			key.Delete(c)
			if _, ok := key.Get(c); ok {
				t.Error("a deleted key is still there")
			}
			if v := c.Value(); v != nil {
				t.Errorf("Value = %v before SetValue", v)
			}
			c.SetValue("v")
			if v := c.Value(); v != "v" {
				t.Errorf("Value = %v, want v", v)
			}

			cctx, pctx := c.Context(), peer.Context()
			if got, ok := handler.ConnFrom(cctx); !ok || got != c {
				t.Errorf("the context carries %v, %v", got, ok)
			}
			if err := cctx.Err(); err != nil {
				t.Fatalf("the context of an open connection ended: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			for _, x := range []context.Context{cctx, pctx} {
				select {
				case <-x.Done():
				case <-ctx.Done():
					t.Fatal("a closed connection's context was not cancelled")
				}
			}
			if cause := context.Cause(cctx); !errors.Is(cause, engine.ErrLocalClose) {
				t.Errorf("the context's cause %v, want ErrLocalClose", cause)
			}
			if cause := context.Cause(pctx); !errors.Is(cause, io.EOF) {
				t.Errorf("the peer's context's cause %v, want io.EOF", cause)
			}
			if err := c.Send(0, struct{}{}); !errors.Is(err, engine.ErrClosed) {
				t.Errorf("Send on the closed connection = %v, want ErrClosed", err)
			}
		})
	}
}

// TestReconnectIsNewConn: a client's reconnection is a new connection, as
// a server sees it: the reconnect and connect callbacks get it, with an id
// of its own and none of the old one's values, and the old one's context
// ends with why it closed. Sends on the old one fail; the Client's go to
// the new one.
func TestReconnectIsNewConn(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	sconns := make(chan handler.Conn, 2)
	srv := startServer(t, echoRouter(), engine.WithOnConnect(func(c handler.Conn) { sconns <- c }))
	cconns, rconns := make(chan handler.Conn, 2), make(chan handler.Conn, 1)
	echoes := make(chan handler.Conn, 1)
	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, _ []byte) error { echoes <- c; return nil })
	cl, err := engine.Dial(ctx, srv.Addr().String(), r,
		engine.WithReconnect(time.Millisecond, 10*time.Millisecond, func(c handler.Conn) { rconns <- c }),
		engine.WithOnConnect(func(c handler.Conn) { cconns <- c }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	next := func(ch chan handler.Conn, what string) handler.Conn {
		t.Helper()
		select {
		case c := <-ch:
			return c
		case <-ctx.Done():
			t.Fatalf("no %s", what)
			return nil
		}
	}
	old := next(cconns, "connect callback")
	old.SetValue("old")
	oldCtx := old.Context()
	// The server drops the connection; the client reconnects.
	if err := next(sconns, "server connect callback").Close(); err != nil {
		t.Fatal(err)
	}
	reconn := next(rconns, "reconnect callback")
	conn := next(cconns, "connect callback after the reconnection")
	if reconn != conn || cl.Conn() != conn {
		t.Errorf("reconnect callback %v, connect callback %v, Client.Conn %v: want one connection", reconn, conn, cl.Conn())
	}
	if conn == old || conn.ID() == old.ID() || cl.ID() != conn.ID() {
		t.Errorf("ids: old %d, new %d, Client %d", old.ID(), conn.ID(), cl.ID())
	}
	if v := conn.Value(); v != nil {
		t.Errorf("the new connection's value %v, want none", v)
	}
	select {
	case <-oldCtx.Done():
		if cause := context.Cause(oldCtx); !errors.Is(cause, io.EOF) {
			t.Errorf("the old context's cause %v, want io.EOF", cause)
		}
	default:
		t.Error("the old connection's context is not cancelled")
	}
	if err := old.Send(1, struct{}{}); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Send on the old connection = %v, want ErrClosed", err)
	}
	if err := old.Call(ctx, 1, nil, nil); !errors.Is(err, engine.ErrClosed) {
		t.Errorf("Call on the old connection = %v, want ErrClosed", err)
	}
	if err := cl.Send(1, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if c := next(echoes, "echo"); c != conn {
		t.Errorf("the echo came to %v, want the new connection %v", c, conn)
	}
}

// TestReconnectCallbackSendsFirst: what the reconnect callback sends on
// the connection it gets goes out at once, ahead of what the Client held
// while disconnected and of what it is asked to send while the callback
// runs, which follow in order.
func TestReconnectCallbackSendsFirst(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	got := newRecorder()
	sr := handler.NewRouter()
	sr.On(2, func(_ handler.Conn, data []byte) error { got.add(string(data)); return nil })
	sconns := make(chan handler.Conn, 2)
	srv := startServer(t, sr, engine.WithOnConnect(func(c handler.Conn) { sconns <- c }))
	dropped := make(chan struct{}, 1)
	var cl *engine.Client
	var err error
	cl, err = engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(),
		engine.WithReconnect(time.Millisecond, 10*time.Millisecond, func(c handler.Conn) {
			if err := c.Send(2, map[string]string{"s": "session"}); err != nil {
				t.Errorf("the reconnect callback's send: %v", err)
			}
			if err := cl.Send(2, map[string]string{"s": "during"}); err != nil {
				t.Errorf("the Client's send during the callback: %v", err)
			}
		}),
		engine.WithOnDisconnect(func(handler.Conn, error) { dropped <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	select {
	case c := <-sconns:
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no server connection")
	}
	select {
	case <-dropped: // from now on the Client holds what it sends
	case <-ctx.Done():
		t.Fatal("the client did not see the connection drop")
	}
	if err := cl.Send(2, map[string]string{"s": "held"}); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"s":"session"}`, `{"s":"held"}`, `{"s":"during"}`}
	if order := got.wait(t, 3); strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("the server got %v, want %v", order, want)
	}
}
