package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

type who struct {
	Name string `json:"name"`
}

// TestPendingReply: a call handler that needs another peer's answer
// returns a handler.Pending and resolves it in its CallAsync's callback,
// with no worker pool: the loop is never held, the first caller gets the
// other peer's answer, a rejection travels back with its reason, and a
// Pending resolved later from a goroutine of the test's own answers its
// call while other frames of the same connection are served meanwhile.
func TestPendingReply(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	released := make(chan struct{})
	var late *handler.Pending
	lateSet := make(chan struct{})
	var srv *engine.Server
	r := handler.NewRouter()
	// 7: ask the peer named by the request (its net id) for its name.
	handler.HandleCall(r, 7, func(c handler.Conn, req struct {
		ID uint64 `json:"id"`
	}) (*handler.Pending, error) {
		p := handler.NewPending()
		other, ok := engine.ServerOf(c).Conn(req.ID)
		if !ok {
			p.Reject(handler.ArgumentValueError(fmt.Sprintf("no peer %d", req.ID)))
			return p, nil
		}
		var answer who
		err := other.CallAsync(context.Background(), 9, struct{}{}, &answer, func(err error) {
			if err != nil {
				p.Reject(err)
				return
			}
			p.Resolve(answer)
		})
		if err != nil {
			return nil, err
		}
		return p, nil
	})
	// 8: answered once the test releases it.
	handler.HandleCall(r, 8, func(c handler.Conn, _ struct{}) (*handler.Pending, error) {
		late = handler.NewPending()
		close(lateSet)
		return late, nil
	})
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error { return c.SendRaw(op, data) })
	srv = startServer(t, r)
	addr := srv.Addr().String()

	br := handler.NewRouter()
	handler.HandleCall(br, 9, func(handler.Conn, struct{}) (who, error) { return who{Name: "bob"}, nil })
	bob, err := engine.Dial(ctx, addr, br)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bob.Close() })
	alice, err := engine.Dial(ctx, addr, handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })

	var got who
	if err := alice.Call(ctx, 7, map[string]uint64{"id": bob.ID()}, &got); err != nil || got.Name != "bob" {
		t.Fatalf("call through bob: %+v, %v", got, err)
	}
	err = alice.Call(ctx, 7, map[string]uint64{"id": 999999}, &got)
	if handler.ReasonOf(err) != handler.ReasonArgumentValueError {
		t.Fatalf("rejected call: %v (reason %q), want ArgumentValueError", err, handler.ReasonOf(err))
	}

	done := make(chan error, 1)
	var lateAnswer who
	if err := alice.CallAsync(ctx, 8, struct{}{}, &lateAnswer, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	<-lateSet
	// The call waits; the connection is served meanwhile.
	if err := alice.Call(ctx, 7, map[string]uint64{"id": bob.ID()}, &got); err != nil {
		t.Fatalf("a call while another waits: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the pending call was answered before it was resolved: %v", err)
	default:
	}
	go func() {
		close(released)
		if !late.Resolve(who{Name: "later"}) {
			t.Error("Resolve did not take effect")
		}
		if late.Resolve(who{Name: "twice"}) || late.Reject(nil) {
			t.Error("a second answer took effect")
		}
	}()
	<-released
	if err := <-done; err != nil || lateAnswer.Name != "later" {
		t.Fatalf("late answer: %+v, %v", lateAnswer, err)
	}
}
