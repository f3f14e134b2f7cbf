// Command server is the server of README.md's "Using it", kept here so
// that CI compiles it (examples/readme/readme_test.go checks README.md
// shows this file as it is).
package main

import (
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

type move struct {
	X int `json:"x" simplerpc:"required"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	msg := handler.NewRouter()
	msg.On(0, func(c handler.Conn, data []byte) error { // data is borrowed until return
		log.Printf("got RPC 0 from net id %d with: %s", c.ID(), data)
		return nil
	})
	handler.Handle(msg, 2, func(c handler.Conn, m move) error { // typed
		if m.X < 0 {
			return handler.ArgumentValueError("x must not be negative") // sent back as -1
		}
		return nil
	})
	handler.HandleCall(msg, 7, func(c handler.Conn, m move) (move, error) { // a call
		return move{X: m.X * 2}, nil
	})

	srv, err := engine.NewServer(msg,
		engine.WithMessageSize(256),
		engine.WithOnConnect(func(c handler.Conn) {
			engine.ServerOf(c).SendAll(1, map[string]string{"some_data": "this is sent to every connection"})
			c.Send(1, map[string]string{"some_data": "this is sent to whoever just connected"})
		}))
	if err != nil {
		log.Fatal(err)
	}
	// Serve blocks until ctx ends (Ctrl-C), then shuts down gracefully.
	if err := srv.Serve(ctx, "127.0.0.1:30000"); err != nil && err != engine.ErrServerClosed {
		log.Fatal(err)
	}
}
