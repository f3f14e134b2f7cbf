// This file tests that SendRaw does not validate again the object an
// inline callback was handed and sends back unchanged, and that it still
// validates every other object, one built over the borrowed bytes too.

package engine_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// onceRouter answers opcodes 0 to 5, each with SendRaw on the same opcode:
//   - 0: the object it was handed (the echo);
//   - 1: an object of its own, equal to the one handed;
//   - 2: the handed bytes changed in place into another valid object;
//   - 3: the handed bytes changed in place into an invalid object;
//   - 4: the handed object less its last byte;
//   - 5: the handed object and the padding after it (same memory, longer).
//
// errs gets SendRaw's error for every frame.
func onceRouter(errs chan<- error) *handler.Router {
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		var err error
		switch op {
		case 0:
			err = c.SendRaw(op, data)
		case 1:
			err = c.SendRaw(op, append([]byte(nil), data...))
		case 2:
			data[len(data)-2] = '9' // {"n":1} -> {"n":9}
			err = c.SendRaw(op, data)
		case 3:
			data[len(data)-1] = ',' // {"n":1} -> {"n":1,
			err = c.SendRaw(op, data)
		case 4:
			err = c.SendRaw(op, data[:len(data)-1])
		case 5:
			err = c.SendRaw(op, data[:len(data)+1])
		}
		errs <- err
		return err
	})
	return r
}

func TestSendRawValidatesOnce(t *testing.T) {
	const frames = 50
	errs := make(chan error, 8*frames)
	srv := startServer(t, onceRouter(errs), engine.WithMessageSize(128))
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)

	// expect sends frames of opcode op, each answered with an echo of want
	// (or a failure when want is ""), and checks how many validations
	// SendRaw made: the count of the scans past DecodeFrame's.
	expect := func(op codec.Opcode, want string, checks uint64) {
		t.Helper()
		before := engine.RawValidations(srv)
		for range frames {
			p.write(fmt.Sprintf(`%d{"n":1}`, op))
			err := <-errs
			gotOp, obj := p.read()
			switch {
			case want == "":
				if !errors.Is(err, codec.ErrNotObject) || gotOp != codec.OpFailure {
					t.Fatalf("op %d: SendRaw error %v, answer %d %s; want ErrNotObject and a failure", op, err, gotOp, obj)
				}
			case err != nil || gotOp != op || string(obj) != want:
				t.Fatalf("op %d: SendRaw error %v, answer %d %s; want %s", op, err, gotOp, obj, want)
			}
		}
		if got := engine.RawValidations(srv) - before; got != checks {
			t.Errorf("op %d: SendRaw validated %d objects for %d frames, want %d", op, got, frames, checks)
		}
	}

	expect(0, `{"n":1}`, 0) // validated once, by DecodeFrame
	expect(1, `{"n":1}`, frames)
	expect(2, `{"n":9}`, frames)
	expect(3, "", frames)
	expect(4, "", frames)
	expect(5, `{"n":1}`, frames) // SendRaw trims the padding
	expect(0, `{"n":1}`, 0)      // and the record of the last object is gone
}

// TestClientSendRawValidatesOnce: a client's callback that echoes the
// object it was handed with SendRaw is not scanned again either; one that
// sends an object of its own is.
func TestClientSendRawValidatesOnce(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const frames = 20
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128))
	got := make(chan string, frames)
	r := handler.NewRouter()
	r.On(1, func(c handler.Conn, data []byte) error { return c.SendRaw(2, data) }) // echoed back on 2
	r.On(3, func(c handler.Conn, data []byte) error { return c.SendRaw(4, []byte(`{"own":1}`)) })
	r.On(2, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	r.On(4, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	cl, err := engine.Dial(ctx, srv.Addr().String(), r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	for _, tc := range []struct {
		op     codec.Opcode
		want   string
		checks uint64
	}{{1, `{"n":1}`, 0}, {3, `{"own":1}`, frames}} {
		before := engine.ClientRawValidations(cl)
		for range frames {
			// The server echoes op back; the client's callback answers.
			if err := cl.Send(tc.op, map[string]int{"n": 1}); err != nil {
				t.Fatal(err)
			}
			if s := <-got; s != tc.want {
				t.Fatalf("op %d: got %s, want %s", tc.op, s, tc.want)
			}
		}
		if n := engine.ClientRawValidations(cl) - before; n != tc.checks {
			t.Errorf("op %d: the client validated %d objects for %d frames, want %d", tc.op, n, frames, tc.checks)
		}
	}
}
