package handler_test

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// countConn counts the callbacks one dispatch ran.
type countConn struct {
	fakeConn
	own, fwd int
	data     []byte // what the last callback was given
}

// rawOps have raw callbacks in the fuzzed router; the others only reach
// its catch-all.
var rawOps = map[codec.Opcode]bool{0: true, 1: true, 255: true, 256: true, 1000: true, math.MaxInt32: true,
	codec.OpFailure: true}

func fuzzRouters() (raw, typed *handler.Router) {
	raw = handler.NewRouter()
	for op := range rawOps {
		raw.On(op, func(c handler.Conn, data []byte) error {
			cc := c.(*countConn)
			cc.own++
			cc.data = data
			return nil
		})
	}
	raw.Forward(func(c handler.Conn, _ codec.Opcode, data []byte) error {
		cc := c.(*countConn)
		cc.fwd++
		cc.data = data
		return nil
	})

	// Typed callbacks; none of them fails, so every failure comes from
	// decoding.
	typed = handler.NewRouter()
	handler.Handle(typed, 1, func(handler.Conn, move) error { return nil })
	handler.Handle(typed, 2, func(handler.Conn, argReq) error { return nil })
	handler.Handle(typed, 3, func(handler.Conn, map[string]any) error { return nil })
	handler.Handle(typed, 4, func(handler.Conn, positive) error { return nil })
	handler.Handle(typed, 1000, func(handler.Conn, *nonEmpty) error { return nil })
	handler.Handle(typed, 1000, func(handler.Conn, []any) error { return nil }) // never an array: always fails
	// Failure callbacks, whose errors are logged and never returned.
	handler.Handle(typed, codec.OpFailure, func(_ handler.Conn, f handler.Error) error {
		if f.Reason == "" {
			return handler.ArgumentMissing("no reason")
		}
		return nil
	})
	handler.Handle(typed, codec.OpFailure, func(handler.Conn, *handler.Error) error { return errors.New("plain") })
	handler.HandleCall(typed, 10, func(_ handler.Conn, req sum) (total, error) { return total{req.A + req.B}, nil })
	typed.On(5, func(handler.Conn, []byte) error { return nil })
	return raw, typed
}

// decodingReasons are the failures a typed callback's decoding may give.
var decodingReasons = map[string]bool{
	handler.ReasonArgumentMissing:    true,
	handler.ReasonArgumentTypeError:  true,
	handler.ReasonArgumentValueError: true,
	handler.ReasonMalformedPayload:   true,
}

// FuzzDispatch dispatches a random opcode and object. Raw callbacks get the
// bytes as they are; typed callbacks, as from the engine, only an object
// codec.Decode accepted. Dispatch never panics (a recovered panic would show
// as an InternalError failure) and runs exactly the registered callbacks;
// failure frames (-1) reach their callbacks but never a catch-all, and never
// give a failure back.
func FuzzDispatch(f *testing.F) {
	for _, s := range []struct {
		op   int32
		data string
	}{
		{0, `{}`},
		{1, `{"x":1,"y":2,"piece":"k","tags":[1]}`},
		{1, `{"x":"1","y":2}`},
		{1, `{"x":1e999,"y":1}`},
		{1, `{"X":1,"Y":2}`},
		{2, `{"argname":"v"}`},
		{2, `{"arg\u006eame":"v"}`},
		{2, `{"a\"rgname":1,"b":{"argname":1}}`},
		{2, `{"argname":"\ud800"}`},
		{3, `{"a":[1,{"b":"\""}],"c":null}`},
		{3, `{"a":`},
		{3, `{"a":"\`},
		{4, `{"n":-1}`},
		{4, `{"n":1.5}`},
		{10, `{"a":1,"b":2}`},
		{10, `{"a":1}`},
		{1000, `{"s":""}`},
		{1000, `{"s":"x"}`},
		{-1, `{"reason":"x","message":"y"}`},
		{-1, `{"reason": "ArgumentMissing", "message": "Expected argument 'argname' in opcode 0"}`},
		{-1, `{"reason":1}`},
		{-1, `{}`},
		{-3, `{"id":1,"op":1,"data":{}}`},
		{math.MaxInt32, "\xff{"},
		{math.MinInt32, ``},
		{256, ` {"a":1}   `},
	} {
		f.Add(s.op, []byte(s.data))
	}
	raw, typed := fuzzRouters()

	f.Fuzz(func(t *testing.T, op32 int32, data []byte) {
		op := codec.Opcode(op32)

		c := &countConn{}
		if fail := raw.Dispatch(c, op, data); fail != nil {
			t.Fatalf("raw Dispatch(%d, %q) = %v", op, data, fail)
		}
		wantOwn, wantFwd := 0, 1
		if rawOps[op] {
			wantOwn = 1
		}
		if op < 0 {
			wantFwd = 0
		}
		if c.own != wantOwn || c.fwd != wantFwd {
			t.Fatalf("raw Dispatch(%d) ran %d own and %d catch-all callbacks, want %d and %d",
				op, c.own, c.fwd, wantOwn, wantFwd)
		}
		if wantOwn+wantFwd > 0 && (len(c.data) != len(data) || len(data) > 0 && &c.data[0] != &data[0]) {
			t.Fatalf("raw Dispatch(%d) gave the callbacks other bytes than its own", op)
		}

		// The space keeps digits at the start of data out of the opcode.
		frame := append(strconv.AppendInt(nil, int64(op), 10), ' ')
		frame = append(frame, data...)
		dop, obj, err := codec.Decode(frame)
		if err != nil {
			return
		}
		if dop != op || !bytes.Contains(data, obj) {
			t.Fatalf("codec.Decode(%q) = %d, %q", frame, dop, obj)
		}
		fail := typed.Dispatch(c, dop, obj)
		if fail != nil && (dop < 0 || !decodingReasons[fail.Reason]) {
			t.Fatalf("typed Dispatch(%d, %s) = %#v, want nil or a decoding failure", dop, obj, fail)
		}
		res, fail := typed.DispatchCall(c, dop, obj)
		switch {
		case dop != 10:
			if fail == nil || fail.Reason != handler.ReasonUnknownOpcode {
				t.Fatalf("DispatchCall(%d) = %v, want UnknownOpcode", dop, fail)
			}
		case fail != nil:
			if !decodingReasons[fail.Reason] || res != nil {
				t.Fatalf("DispatchCall(10, %s) = %v, %#v, want a decoding failure", obj, res, fail)
			}
		default:
			if _, ok := res.(total); !ok {
				t.Fatalf("DispatchCall(10, %s) = %#v, want a total", obj, res)
			}
		}
	})
}
