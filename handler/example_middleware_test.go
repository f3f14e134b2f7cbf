package handler_test

import (
	"fmt"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// ExampleRouter_Use times every call and reports its opcode, outcome and
// duration, as a metrics or tracing middleware would.
func ExampleRouter_Use() {
	report := func(op codec.Opcode, err error, d time.Duration) {
		outcome := "ok"
		if err != nil {
			outcome = handler.ReasonOf(err)
		}
		fmt.Printf("call %d: %s, timed: %v\n", op, outcome, d >= 0)
	}
	r := handler.NewRouter()
	r.Use(handler.Middleware{
		Call: func(next handler.CallHandler) handler.CallHandler {
			return func(c handler.Conn, op codec.Opcode, data []byte) (any, error) {
				start := time.Now()
				res, err := next(c, op, data)
				report(op, err, time.Since(start))
				return res, err
			}
		},
	})
	r.OnCall(1, func(c handler.Conn, data []byte) (any, error) {
		return map[string]int{"sum": 3}, nil
	})
	r.OnCall(2, func(c handler.Conn, data []byte) (any, error) {
		return nil, handler.ArgumentMissing("Expected argument 'b' in opcode 2")
	})

	c := printConn()
	r.DispatchCall(c, 1, []byte(`{"a":1,"b":2}`))
	r.DispatchCall(c, 2, []byte(`{"a":1}`))
	r.DispatchCall(c, 3, []byte(`{}`))
	// Output:
	// call 1: ok, timed: true
	// call 2: ArgumentMissing, timed: true
	// call 3: UnknownOpcode, timed: true
}
