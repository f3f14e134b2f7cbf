// Command testserver is the simplerpc server the JavaScript client's tests
// run against: two WebSocket servers on 127.0.0.1 with free ports, whose
// ws:// URLs it prints on its first two lines of output, the open one
// first, then the one that requires authentication. It stops when its
// standard input closes.
//
// The open server: every application opcode is echoed, except 5, answered
// with an ArgumentMissing failure; call 1 returns its data; call 2 fails
// with ArgumentValueError; a frame on 10 makes the server call the client
// on 20 with the frame's data and send the reply back on 11; a frame on 12
// goes to every connection on 13.
//
// The server that requires authentication takes {"token": "good:NAME"} as
// the credentials of identity NAME and refuses any other with the message
// "unknown token". It echoes every application frame as {"identity":
// ID, "data": DATA}, ID the sender's identity; call 1 returns the same;
// a frame on 30 restarts it: it shuts down (its clients get -8) and
// starts again on the same address.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open, err := openServer()
	if err != nil {
		return err
	}
	if err := open.Start(ctx, "ws://127.0.0.1:0/rpc"); err != nil {
		return err
	}
	auth := &authServer{}
	if err := auth.start(ctx, "ws://127.0.0.1:0/rpc"); err != nil {
		return err
	}
	fmt.Printf("ws://%s/rpc\n", open.Addr())
	fmt.Printf("%s\n", auth.url)
	_, _ = io.Copy(io.Discard, os.Stdin)
	err = auth.stop()
	if err2 := open.Shutdown(context.Background()); err == nil {
		err = err2
	}
	return err
}

// openServer returns the server that requires no authentication.
func openServer() (*engine.Server, error) {
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
	return srv, err
}

// refusal is an authenticator's error whose text the client gets.
type refusal string

func (r refusal) Error() string  { return string(r) }
func (r refusal) Reason() string { return engine.ReasonUnauthorized }

// authenticate accepts {"token": "good:NAME"} as NAME.
func authenticate(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
	var c struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(creds, &c); err != nil {
		return "", refusal("credentials malformed")
	}
	name, ok := strings.CutPrefix(c.Token, "good:")
	if !ok || name == "" {
		return "", refusal("unknown token")
	}
	return name, nil
}

// echoed is what the server that requires authentication sends back.
type echoed struct {
	Identity string          `json:"identity"`
	Data     json.RawMessage `json:"data"`
}

// authServer is the server that requires authentication, restarted on
// the same address when asked.
type authServer struct {
	mu   sync.Mutex // guards srv, and serialises restarts
	srv  *engine.Server
	url  string // ws://host:port/rpc, set by the first start
	ctx  context.Context
	done bool // stopped for good
}

func (a *authServer) start(ctx context.Context, url string) error {
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		if op == 30 {
			go a.restart()
			return nil
		}
		return c.Send(op, echoed{engine.IdentityOf(c), append([]byte(nil), data...)})
	})
	r.OnCall(1, func(c handler.Conn, data []byte) (any, error) {
		return echoed{engine.IdentityOf(c), append([]byte(nil), data...)}, nil
	})
	srv, err := engine.NewServer(r,
		engine.WithWebSocket(engine.WebSocketOrigins("*")),
		engine.WithAuth(authenticate, 10*time.Second))
	if err != nil {
		return err
	}
	if err := srv.Start(ctx, url); err != nil {
		return err
	}
	a.srv, a.ctx = srv, ctx
	a.url = fmt.Sprintf("ws://%s/rpc", srv.Addr())
	return nil
}

// restart shuts the server down and starts it again on its address.
func (a *authServer) restart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	if err := a.srv.Shutdown(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "testserver: restart: shutdown:", err)
	}
	if err := a.start(a.ctx, a.url); err != nil {
		fmt.Fprintln(os.Stderr, "testserver: restart:", err)
		os.Exit(1)
	}
}

// stop shuts the server down for good.
func (a *authServer) stop() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done = true
	return a.srv.Shutdown(context.Background())
}
