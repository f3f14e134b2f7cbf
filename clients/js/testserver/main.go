// Command testserver is the simplerpc server the JavaScript client's tests
// run against: a WebSocket listener on 127.0.0.1 with a free port, whose
// ws:// URL it prints on its first line of output. It stops when its
// standard input closes.
//
// Opcodes: every application opcode is echoed, except 5, answered with an
// ArgumentMissing failure; call 1 returns its data; call 2 fails with
// ArgumentValueError; a frame on 10 makes the server call the client on 20
// with the frame's data and send the reply back on 11; a frame on 12 goes
// to every connection on 13.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}

func run() error {
	var srv *engine.Server
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		switch op {
		case 5:
			return handler.ArgumentMissing("Expected argument 'argname' in opcode 5")
		case 10:
			req := json.RawMessage(append([]byte(nil), data...))
			go func() {
				var resp json.RawMessage
				if err := c.Call(context.Background(), 20, req, &resp); err != nil {
					_ = c.Send(11, map[string]string{"error": handler.ReasonOf(err)})
					return
				}
				_ = c.SendRaw(11, resp)
			}()
			return nil
		case 12:
			return srv.SendAllRaw(13, data)
		}
		return c.SendRaw(op, data)
	})
	r.OnCall(1, func(_ handler.Conn, data []byte) (any, error) {
		return json.RawMessage(append([]byte(nil), data...)), nil
	})
	r.OnCall(2, func(handler.Conn, []byte) (any, error) {
		return nil, handler.ArgumentValueError("no, thanks")
	})
	var err error
	srv, err = engine.NewServer(r, engine.WithWebSocket(engine.WebSocketOrigins("*")))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Start(ctx, "ws://127.0.0.1:0/rpc"); err != nil {
		return err
	}
	fmt.Printf("ws://%s/rpc\n", srv.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return srv.Shutdown(context.Background())
}
