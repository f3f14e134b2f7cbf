// Command client is the client of README.md's "Using it", kept here so
// that CI compiles it (examples/readme/readme_test.go checks README.md
// shows this file as it is).
package main

import (
	"context"
	"log"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

type move struct {
	X int `json:"x"`
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, data []byte) error {
		log.Printf("got RPC 1 with: %s", data)
		return nil
	})
	handler.Handle(r, codec.OpFailure, func(c handler.Conn, f *handler.Error) error {
		log.Printf("failure %s: %s", f.Reason, f.Message) // what a handler of the server returned
		return nil
	})
	cl, err := engine.Dial(ctx, "127.0.0.1:30000", r)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	cl.Send(0, map[string]int{"some_data": 123})
	cl.Send(2, move{X: -1}) // comes back as an ArgumentValueError failure

	var res move
	if err := cl.Call(ctx, 7, move{X: 21}, &res); err != nil { // waits for the handler's result
		log.Fatal(err)
	}
	log.Printf("7 answered %d", res.X)

	done := make(chan error, 1)
	err = cl.CallAsync(ctx, 7, move{X: 2}, &res, func(err error) { done <- err }) // does not wait
	if err == nil {
		err = <-done // res is set once done has run
	}
	log.Printf("7 answered %d (%v)", res.X, err)
}
