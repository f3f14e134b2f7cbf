package engine_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// The original README's messenger, in Go: the server greets each new
// connection and the client answers.
func ExampleServer() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	msg := handler.NewRouter()
	got := make(chan string, 1)
	msg.On(0, func(c handler.Conn, data []byte) error {
		got <- fmt.Sprintf("server got RPC 0 with: %s", data) // data is borrowed: copy it
		return nil
	})
	srv, err := engine.NewServer(msg, engine.WithMessageSize(256),
		engine.WithOnConnect(func(c handler.Conn) {
			_ = c.Send(1, map[string]string{"some_data": "this is sent to whoever just connected"})
		}))
	if err != nil {
		panic(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	cmsg := handler.NewRouter()
	cmsg.On(1, func(c handler.Conn, data []byte) error {
		fmt.Printf("client got RPC 1 with: %s\n", data)
		return c.Send(0, map[string]int{"some_data": 123})
	})
	cl, err := engine.Dial(ctx, srv.Addr().String(), cmsg)
	if err != nil {
		panic(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	fmt.Println(<-got)
	// Output:
	// client got RPC 1 with: {"some_data":"this is sent to whoever just connected"}
	// server got RPC 0 with: {"some_data":123}
}

// A failure returned by a handler travels back to the client, whose -1
// callback gets it, as the original's msg.on(-1, ...) did.
func Example_failure() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type args struct {
		Argname string `json:"argname" simplerpc:"required"`
	}
	r := handler.NewRouter()
	handler.Handle(r, 0, func(c handler.Conn, a args) error { return nil })
	srv, _ := engine.NewServer(r)
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	failed := make(chan *handler.Error, 1)
	cr := handler.NewRouter()
	handler.Handle(cr, codec.OpFailure, func(c handler.Conn, f *handler.Error) error { failed <- f; return nil })
	cl, err := engine.Dial(ctx, srv.Addr().String(), cr)
	if err != nil {
		panic(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	_ = cl.Send(0, map[string]int{"other": 1})
	f := <-failed
	fmt.Println(f.Reason+":", f.Message)
	// Output:
	// ArgumentMissing: Expected argument 'argname' in opcode 0
}

// A call waits for the handler's return value; a failure comes back as an
// error that errors.As recognises.
func ExampleClient_Call() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type sum struct{ A, B int }
	type result struct{ Sum int }
	r := handler.NewRouter()
	handler.HandleCall(r, 7, func(c handler.Conn, s sum) (result, error) {
		if s.A < 0 {
			return result{}, handler.ArgumentValueError("A must not be negative")
		}
		return result{Sum: s.A + s.B}, nil
	})
	srv, _ := engine.NewServer(r)
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)
	cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	if err != nil {
		panic(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()

	var res result
	if err := cl.Call(ctx, 7, sum{2, 3}, &res); err != nil {
		panic(err)
	}
	fmt.Println("sum:", res.Sum)

	err = cl.Call(ctx, 7, sum{-1, 3}, &res)
	var bad handler.ArgumentValueError
	fmt.Println(errors.As(err, &bad), handler.ReasonOf(err), string(bad))
	// Output:
	// sum: 5
	// true ArgumentValueError A must not be negative
}

// A client's connection is the kind a server's is: its callbacks get it,
// Client.Conn returns it, and it keeps values of its own. The Client
// around it sends, calls and reconnects.
func ExampleClient_Conn() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	sr := handler.NewRouter()
	sr.On(1, func(c handler.Conn, data []byte) error { return c.SendRaw(1, data) })
	srv, _ := engine.NewServer(sr)
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	got := make(chan string, 1)
	cr := handler.NewRouter()
	cr.On(1, func(c handler.Conn, data []byte) error {
		got <- fmt.Sprintf("echo %s for %v", data, c.Value())
		return nil
	})
	cl, err := engine.Dial(ctx, srv.Addr().String(), cr)
	if err != nil {
		panic(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()

	c := cl.Conn()
	c.SetValue("alice")
	fmt.Println("same id:", c.ID() == cl.ID(), "server:", engine.ServerOf(c) != nil)
	_ = cl.Send(1, map[string]int{"n": 1})
	fmt.Println(<-got)
	// Output:
	// same id: true server: false
	// echo {"n":1} for alice
}

// A server callback asks the client that just connected for its name with
// CallAsync: a callback may not block (Call from one fails with
// ErrCallOnLoop), and CallAsync needs no goroutine. done runs on the event
// loop once the reply is in.
func Example_callAsync() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	type hello struct {
		Name string `json:"name"`
	}
	names := make(chan string, 1)
	srv, _ := engine.NewServer(handler.NewRouter(), engine.WithOnConnect(func(c handler.Conn) {
		var h hello
		err := c.CallAsync(ctx, 3, nil, &h, func(err error) {
			if err != nil {
				names <- "error: " + err.Error()
				return
			}
			names <- h.Name
		})
		if err != nil {
			names <- "error: " + err.Error()
		}
	}))
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	r := handler.NewRouter()
	handler.HandleCall(r, 3, func(handler.Conn, struct{}) (hello, error) {
		return hello{Name: "knight"}, nil
	})
	cl, err := engine.Dial(ctx, srv.Addr().String(), r)
	if err != nil {
		panic(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	fmt.Println("the client says it is", <-names)
	// Output:
	// the client says it is knight
}

// SendAll reaches every connection with one encoding of the JSON: the
// original's rpc_all.
func ExampleServer_SendAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	joined := make(chan struct{}, 2)
	srv, _ := engine.NewServer(handler.NewRouter(),
		engine.WithOnConnect(func(handler.Conn) { joined <- struct{}{} }))
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Shutdown(ctx)

	got := make(chan string, 2)
	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, data []byte) error { got <- string(data); return nil })
	d, _ := engine.NewDialer(r)
	defer d.Close()
	for range 2 {
		if _, err := d.Dial(ctx, srv.Addr().String()); err != nil {
			panic(err)
		}
		<-joined
	}
	_ = srv.SendAll(1, map[string]string{"some_data": "this is sent to every connection"})
	fmt.Println(<-got)
	fmt.Println(<-got)
	// Output:
	// {"some_data":"this is sent to every connection"}
	// {"some_data":"this is sent to every connection"}
}
