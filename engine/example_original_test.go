// This file shows, as runnable examples, what the original's public names
// map to: server.connections, rooms, Connection.on_disconnect and
// Connection.handler.

package engine_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Conns lists the open connections, as the original's server.connections
// did; Stats().Conns counts them.
func ExampleServer_Conns() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	joined := make(chan struct{}, 3)
	srv, _ := engine.NewServer(handler.NewRouter(),
		engine.WithOnConnect(func(handler.Conn) { joined <- struct{}{} }))
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)
	d, _ := engine.NewDialer(handler.NewRouter())
	defer d.Close()
	for range 3 {
		if _, err := d.Dial(ctx, srv.Addr().String()); err != nil {
			panic(err)
		}
		<-joined
	}
	var ids []uint64
	for _, c := range srv.Conns() {
		ids = append(ids, c.ID())
	}
	slices.Sort(ids)
	fmt.Println(srv.Stats().Conns, "connections, net ids", ids)
	// Output:
	// 3 connections, net ids [1 2 3]
}

// A group is a room: connections join it, and a frame sent to it reaches
// its members only.
func ExampleServer_Group() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var srv *engine.Server
	r := handler.NewRouter()
	type join struct {
		Room string `json:"room" simplerpc:"required"`
	}
	// A handler joins its own connection to the room it asks for.
	handler.HandleCall(r, 1, func(c handler.Conn, j join) (any, error) {
		return nil, srv.Group(j.Room).Join(c.ID())
	})
	srv, _ = engine.NewServer(r)
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	got := make(chan string, 2)
	cr := handler.NewRouter()
	cr.On(2, func(c handler.Conn, data []byte) error { got <- string(data); return nil })
	d, _ := engine.NewDialer(cr)
	defer d.Close()
	alice, _ := d.Dial(ctx, srv.Addr().String())
	bob, _ := d.Dial(ctx, srv.Addr().String())
	_ = alice.Call(ctx, 1, join{Room: "lobby"}, nil)
	_ = bob.Call(ctx, 1, join{Room: "kitchen"}, nil)

	lobby := srv.Group("lobby")
	_ = lobby.Send(2, map[string]string{"text": "only the lobby hears this"})
	fmt.Println(lobby.Len(), "in the lobby:", <-got)
	// Output:
	// 1 in the lobby: {"text":"only the lobby hears this"}
}

// The original let each Connection have its own on_disconnect and its own
// handler. Here both are the connection's value: the disconnect callback
// runs the one the connection holds, and a catch-all hands the frames of a
// connection that holds a router of its own to that router.
func Example_perConnection() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type session struct {
		router       *handler.Router // this connection's handler
		onDisconnect func(reason error)
	}
	out := make(chan string, 4)
	admin := handler.NewRouter()
	admin.On(0, func(c handler.Conn, data []byte) error {
		out <- "admin router got " + string(data)
		return nil
	})
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		if s, ok := c.Value().(*session); ok && s.router != nil {
			return s.router.Dispatch(c, op, data)
		}
		out <- "shared router got " + string(data)
		return nil
	})
	srv, _ := engine.NewServer(r,
		engine.WithOnConnect(func(c handler.Conn) {
			c.SetValue(&session{
				router:       admin,
				onDisconnect: func(error) { out <- fmt.Sprintf("net id %d left", c.ID()) },
			})
		}),
		engine.WithOnDisconnect(func(c handler.Conn, reason error) {
			if s, ok := c.Value().(*session); ok && s.onDisconnect != nil {
				s.onDisconnect(reason)
			}
		}))
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	cl, _ := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	_ = cl.Send(0, map[string]int{"n": 1})
	fmt.Println(<-out)
	_ = cl.Close()
	fmt.Println(<-out)
	// Output:
	// admin router got {"n":1}
	// net id 1 left
}
