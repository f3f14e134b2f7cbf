package handler_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// printConn returns a handler.Conn that prints each frame sent on it,
// "send OPCODE OBJECT", instead of writing it to a socket. The engine
// provides the real one.
func printConn() *fakeConn { return &fakeConn{id: 1, out: os.Stdout} }

// reply sends a Dispatch failure back as the engine does: a -1 frame.
func reply(c handler.Conn, fail *handler.Error) {
	if fail != nil {
		_ = c.Send(codec.OpFailure, fail)
	}
}

func ExampleRouter_On() {
	r := handler.NewRouter()
	// Echo opcode 0 back to its sender. data is borrowed: SendRaw copies it.
	r.On(0, func(c handler.Conn, data []byte) error {
		return c.SendRaw(0, data)
	})
	// A second callback for the same opcode runs after the first.
	r.On(0, func(c handler.Conn, data []byte) error {
		fmt.Printf("conn %d sent %s\n", c.ID(), data)
		return nil
	})

	c := printConn()
	reply(c, r.Dispatch(c, 0, []byte(`{"some_data":123}`)))
	// Output:
	// send 0 {"some_data":123}
	// conn 1 sent {"some_data":123}
}

func ExampleRouter_On_failure() {
	r := handler.NewRouter()
	// The original's msg.on(-1, fn): the peer could not handle a frame.
	handler.Handle(r, codec.OpFailure, func(c handler.Conn, f handler.Error) error {
		fmt.Printf("conn %d: peer failed: %s: %s\n", c.ID(), f.Reason, f.Message)
		// The typed failures are one FromWire away.
		var missing handler.ArgumentMissing
		if errors.As(handler.FromWire(f.Reason, f.Message), &missing) {
			fmt.Println("resend with the missing argument")
		}
		// An error is logged, never sent back: nothing answers a failure.
		return errors.New("not sent")
	})

	c := printConn()
	reply(c, r.Dispatch(c, codec.OpFailure,
		[]byte(`{"reason": "ArgumentMissing", "message": "Expected argument 'argname' in opcode 0"}`)))
	fmt.Println("failure callback registered:", r.Handles(codec.OpFailure))
	// Output:
	// conn 1: peer failed: ArgumentMissing: Expected argument 'argname' in opcode 0
	// resend with the missing argument
	// failure callback registered: true
}

// Move is the request of the typed examples. X and Y must be present.
type Move struct {
	X     int    `json:"x" simplerpc:"required"`
	Y     int    `json:"y" simplerpc:"required"`
	Piece string `json:"piece,omitempty"`
}

// Validate makes Move a handler.Validator.
func (m Move) Validate() error {
	if m.X < 0 || m.Y < 0 {
		return handler.ArgumentValueError("x and y must not be negative")
	}
	return nil
}

func ExampleHandle() {
	r := handler.NewRouter()
	handler.Handle(r, 1, func(c handler.Conn, m Move) error {
		return c.Send(2, map[string]any{"moved": m.Piece, "to": []int{m.X, m.Y}})
	})

	c := printConn()
	reply(c, r.Dispatch(c, 1, []byte(`{"x":3,"y":4,"piece":"knight"}`)))
	reply(c, r.Dispatch(c, 1, []byte(`{"x":3}`)))         // y is missing
	reply(c, r.Dispatch(c, 1, []byte(`{"x":"3","y":4}`))) // x is a string
	reply(c, r.Dispatch(c, 1, []byte(`{"x":-1,"y":4}`)))  // Validate fails
	// Output:
	// send 2 {"moved":"knight","to":[3,4]}
	// send -1 {"reason":"ArgumentMissing","message":"Expected argument 'y' in opcode 1"}
	// send -1 {"reason":"ArgumentTypeError","message":"Argument 'x' has the wrong type (string) in opcode 1"}
	// send -1 {"reason":"ArgumentValueError","message":"x and y must not be negative"}
}

func ExampleHandleCall() {
	type Sum struct {
		A int `json:"a" simplerpc:"required"`
		B int `json:"b" simplerpc:"required"`
	}
	type Total struct {
		Total int `json:"total"`
	}
	server := handler.NewRouter()
	handler.HandleCall(server, 10, func(_ handler.Conn, req Sum) (Total, error) {
		return Total{req.A + req.B}, nil
	})

	// A client connection whose Call reaches the server's router.
	client := &fakeConn{peer: server}
	ctx := context.Background()

	var t Total
	if err := client.Call(ctx, 10, Sum{A: 20, B: 22}, &t); err != nil {
		fmt.Println("call failed:", err)
	}
	fmt.Println("total:", t.Total)

	err := client.Call(ctx, 10, map[string]int{"a": 1}, &t)
	var missing handler.ArgumentMissing
	if errors.As(err, &missing) {
		fmt.Println("missing:", missing)
	}
	// Output:
	// total: 42
	// missing: Expected argument 'b' in opcode 10
}

func ExampleRouter_Forward() {
	r := handler.NewRouter()
	r.On(5, func(handler.Conn, []byte) error {
		fmt.Println("opcode 5's own callback")
		return nil
	})
	// The catch-all sees every application frame, after the opcode's own
	// callbacks, and never the protocol's negative opcodes, failure frames
	// included.
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		fmt.Printf("forward %d %s\n", op, data)
		return nil
	})

	c := printConn()
	for _, op := range []codec.Opcode{5, 6, 1 << 20, codec.OpFailure, codec.OpPing} {
		reply(c, r.Dispatch(c, op, []byte(`{"n":1}`)))
	}
	// Output:
	// opcode 5's own callback
	// forward 5 {"n":1}
	// forward 6 {"n":1}
	// forward 1048576 {"n":1}
}

func ExampleReasonOf() {
	// A failure frame from the peer, wrapped by the layer that read it.
	err := fmt.Errorf("call 1: %w", handler.FromWire("ArgumentMissing", "Expected argument 'x' in opcode 1"))
	fmt.Println(handler.ReasonOf(err))
	var missing handler.ArgumentMissing
	fmt.Println(errors.As(err, &missing), missing)

	// A reason this package has no type for arrives as *handler.Error.
	err = handler.FromWire("QuotaExceeded", "try later")
	var he *handler.Error
	fmt.Println(handler.ReasonOf(err), errors.As(err, &he), he.Message)

	// A malformed frame names its reason too, and a plain error none.
	_, _, err = codec.Decode([]byte(`1 {"x":`))
	fmt.Printf("%s %q\n", handler.ReasonOf(err), handler.ReasonOf(errors.New("plain")))
	// Output:
	// ArgumentMissing
	// true Expected argument 'x' in opcode 1
	// QuotaExceeded true try later
	// MalformedPayload ""
}

func ExampleFailure() {
	errDown := errors.New("database at 10.0.0.5 is down")
	for _, err := range []error{
		handler.ArgumentValueError("n must be positive"),
		fmt.Errorf("lookup: %w", handler.ArgumentMissing("Expected argument 'id' in opcode 3")),
		fmt.Errorf("lookup: %w", errDown), // names no reason: its text stays local
	} {
		f := handler.Failure(err)
		fmt.Printf("%s: %s (wraps the error: %v)\n", f.Reason, f.Message, errors.Is(f, err))
	}
	// Output:
	// ArgumentValueError: n must be positive (wraps the error: true)
	// ArgumentMissing: Expected argument 'id' in opcode 3 (wraps the error: true)
	// InternalError: internal error (wraps the error: true)
}
