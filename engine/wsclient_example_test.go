package engine_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// A server on TCP and WebSocket at once, and a client that dials it over
// ws://: the same calls, the same net ids, one frame per WebSocket message.
func ExampleDial_webSocket() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	r := handler.NewRouter()
	type greeting struct{ Text string }
	handler.HandleCall(r, 3, func(_ handler.Conn, req struct{ Name string }) (greeting, error) {
		return greeting{"hello, " + req.Name}, nil
	})
	srv, err := engine.NewServer(r)
	if err != nil {
		panic(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ws, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	// Start(ctx, "ws://127.0.0.1:8080/rpc") does the same for one address.
	if err := srv.StartOn(ctx, tcp, engine.WebSocketListener(ws, "/rpc")); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	// wss://host:port/rpc works the same, with engine.WithTLS.
	cl, err := engine.Dial(ctx, "ws://"+ws.Addr().String()+"/rpc", handler.NewRouter())
	if err != nil {
		panic(err) // a refused upgrade is an error of Dial's
	}
	defer func() { cl.Close(); <-cl.Done() }()
	var g greeting
	if err := cl.Call(ctx, 3, struct{ Name string }{"browser"}, &g); err != nil {
		panic(err)
	}
	fmt.Println(g.Text, "over", cl.MessageSize(), "byte frames")
	// Output:
	// hello, browser over 1024 byte frames
}
