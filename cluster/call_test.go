package cluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

func TestCallsBothWaysAcrossNodes(t *testing.T) {
	_, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 20*time.Second)
	clients := []*client{dial(t, nodes[0]), dial(t, nodes[1]), dial(t, nodes[2])}
	// Every node calls a connection of every node, its own included.
	for _, n := range nodes {
		for i, cl := range clients {
			var r addResp
			if err := n.Call(ctx, cl.id, opAdd, addReq{A: n.Number(), B: i}, &r); err != nil {
				t.Fatalf("node %d -> client on node %d: %v", n.Number(), i+1, err)
			}
			if r.Sum != n.Number()+i {
				t.Errorf("node %d -> client on node %d: sum %d", n.Number(), i+1, r.Sum)
			}
		}
	}
	// A client asks its node, whose inline callback calls a client of
	// another node with CallAsync: client 1 -> node 1 -> node 3 -> client 3
	// and back, without blocking node 1's event loop.
	for _, to := range []*client{clients[2], clients[0]} {
		if err := clients[0].Send(opRelay, addReq{ID: to.id, A: 20, B: 22}); err != nil {
			t.Fatal(err)
		}
		clients[0].expect(t, ctx, opRelayed, `{"sum":42}`)
	}
	// Many calls at once, both ways.
	errs := make(chan error, 200)
	for i := range 100 {
		a, b := nodes[i%3], clients[(i+1)%3]
		go func() {
			var r addResp
			err := a.Call(ctx, b.id, opAdd, addReq{A: i, B: 1}, &r)
			if err == nil && r.Sum != i+1 {
				err = errors.New("wrong sum")
			}
			errs <- err
		}()
	}
	for range 100 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if p := n.Stats().Pending; p != 0 {
			t.Errorf("node %d: %d calls still pending", n.Number(), p)
		}
	}
}

func TestCallFailuresAreTyped(t *testing.T) {
	_, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 20*time.Second)
	remote := dial(t, nodes[1])
	err := nodes[0].Call(ctx, remote.id, opRequired, struct{}{}, nil)
	var missing handler.ArgumentMissing
	if !errors.As(err, &missing) || handler.ReasonOf(err) != handler.ReasonArgumentMissing {
		t.Errorf("missing argument: %v (%T)", err, errors.Unwrap(err))
	}
	if string(missing) != "Expected argument 'x' in opcode 21" {
		t.Errorf("message %q", missing)
	}
	err = nodes[0].Call(ctx, remote.id, opRefuse, nil, nil)
	var refused handler.ArgumentValueError
	if !errors.As(err, &refused) || string(refused) != "refused" {
		t.Errorf("refused: %v", err)
	}
	err = nodes[0].Call(ctx, remote.id, 99, nil, nil)
	if handler.ReasonOf(err) != handler.ReasonUnknownOpcode {
		t.Errorf("unknown opcode: %v", err)
	}
	// CallAsync reports the same way.
	done := make(chan error, 1)
	if err := nodes[0].CallAsync(ctx, remote.id, opRefuse, nil, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.As(err, &refused) {
		t.Errorf("CallAsync: %v", err)
	}
	if err := nodes[0].CallAsync(ctx, remote.id, opAdd, nil, nil, nil); err == nil {
		t.Error("CallAsync without done succeeded")
	}
	if err := nodes[0].Call(ctx, remote.id, -3, nil, nil); err == nil {
		t.Error("Call on a reserved opcode succeeded")
	}
}

func TestCallToAGoneConnectionFailsAtOnce(t *testing.T) {
	_, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 30*time.Second)
	remote := dial(t, nodes[1])
	_ = remote.Close()
	waitFor(t, ctx, "the close", func() bool { return nodes[1].Len() == 0 })
	// ctx has half a minute left: an answer that waited for it would show.
	err := nodes[0].Call(ctx, remote.id, opAdd, addReq{}, nil)
	if !errors.Is(err, engine.ErrUnknownConn) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call to a closed connection: %v, want ErrUnknownConn", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the call waited for its deadline")
	}
}

func TestCallDeadlineCrossesNodes(t *testing.T) {
	_, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 20*time.Second)
	remote := dial(t, nodes[1])
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := nodes[0].Call(cctx, remote.id, opSlow, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call: %v, want DeadlineExceeded", err)
	}
	if deadline, _ := cctx.Deadline(); time.Now().Before(deadline) {
		t.Errorf("the call ended %v before its deadline", time.Until(deadline))
	}
	<-remote.slowIn
	// The node that holds the connection got the deadline: its own call
	// ends too, although the client has not answered.
	waitFor(t, ctx, "the relayed call to end", func() bool { return nodes[1].Stats().Relayed == 0 })
	if p := nodes[0].Stats().Pending; p != 0 {
		t.Errorf("%d calls pending", p)
	}
	remote.unblock() // its late answer goes nowhere
	// A call with no deadline is bounded by WithCallTimeout; one whose
	// context is cancelled ends with it.
	cctx, cancel = context.WithCancel(ctx)
	done := make(chan error, 1)
	if err := nodes[0].CallAsync(cctx, remote.id, opSlow, nil, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	<-remote.slowIn
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v", err)
	}
	// An expired context is refused before anything is sent.
	if err := nodes[0].CallAsync(cctx, remote.id, opAdd, nil, nil, func(error) { t.Error("done ran") }); !errors.Is(err, context.Canceled) {
		t.Errorf("CallAsync with a cancelled context: %v", err)
	}
}

func TestCallTimeoutBoundsCallsWithoutDeadline(t *testing.T) {
	_, nodes := newCluster(t, 2, cluster.WithCallTimeout(200*time.Millisecond))
	remote := dial(t, nodes[1])
	err := nodes[0].Call(context.Background(), remote.id, opSlow, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call without a deadline: %v, want DeadlineExceeded from WithCallTimeout", err)
	}
}

func TestShutdownEndsPendingCalls(t *testing.T) {
	ns, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 20*time.Second)
	remote := dial(t, nodes[1])
	extra := startNode(t, connectInProcess(t, ns), 3)
	formed(t, ctx, append(nodes, extra)...)
	done := make(chan error, 1)
	if err := extra.CallAsync(ctx, remote.id, opSlow, nil, nil, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	<-remote.slowIn
	if err := extra.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("call pending at shutdown: %v, want ErrServerClosed", err)
	}
	if err := extra.Send(remote.id, 1, map[string]int{}); !errors.Is(err, engine.ErrServerClosed) {
		t.Errorf("Send after shutdown: %v", err)
	}
}
