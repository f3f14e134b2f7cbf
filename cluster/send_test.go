package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/engine"
)

func TestNetIDsNameTheirNode(t *testing.T) {
	_, nodes := newCluster(t, 3)
	seen := map[uint64]bool{}
	for _, n := range nodes {
		for range 3 {
			cl := dial(t, n)
			if got := cluster.NodeOf(cl.id); got != n.Number() {
				t.Errorf("NodeOf(%d) = %d, want %d", cl.id, got, n.Number())
			}
			if seen[cl.id] {
				t.Errorf("net id %d given out twice", cl.id)
			}
			seen[cl.id] = true
		}
	}
	if cluster.NodeOf(0) != 0 {
		t.Error("NodeOf(0) != 0")
	}
}

func TestSendAllReachesEveryNode(t *testing.T) {
	_, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 20*time.Second)
	var clients []*client
	for _, n := range nodes {
		clients = append(clients, dial(t, n), dial(t, n))
	}
	before := make([]cluster.Stats, len(nodes))
	for i, n := range nodes {
		before[i] = n.Stats()
	}
	if err := nodes[1].SendAll(1, map[string]string{"hello": "all"}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range clients {
		cl.expect(t, ctx, 1, `{"hello":"all"}`)
	}
	// One message on the bus for six connections, received once by each
	// other node.
	if d := nodes[1].Stats().Published - before[1].Published; d != 1 {
		t.Errorf("SendAll published %d messages, want 1", d)
	}
	for _, i := range []int{0, 2} {
		if d := nodes[i].Stats().Received - before[i].Received; d != 1 {
			t.Errorf("node %d received %d messages, want 1", i+1, d)
		}
	}

	// Except one connection of another node.
	except := clients[5]
	if err := nodes[0].SendAllExcept(except.id, 2, map[string]int{"n": 2}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range clients[:5] {
		cl.expect(t, ctx, 2, `{"n":2}`)
	}
	if err := nodes[0].SendAllRaw(3, []byte(` {"raw": true} `)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range clients {
		cl.expect(t, ctx, 3, `{"raw": true}`)
	}
	// The connection left out got nothing before the raw frame.
	if err := nodes[2].SendAllRaw(3, []byte(`[1]`)); err == nil {
		t.Error("SendAllRaw accepted an array")
	}
}

func TestSendByIDKeepsOrderPerOrigin(t *testing.T) {
	_, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 30*time.Second)
	dst := dial(t, nodes[1])
	mate := dial(t, nodes[1])
	if err := nodes[1].Group("g").Join(mate.id); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].Group("g").Join(dst.id); err != nil {
		t.Fatal(err)
	}
	const count = 300
	done := make(chan error, 2)
	// Node 1 interleaves sends by id, to its group and to all; node 3
	// sends by id at the same time. Each origin's frames keep their order.
	go func() {
		for i := range count {
			var err error
			switch i % 3 {
			case 0:
				err = nodes[0].Send(dst.id, 1, seqMsg{Seq: i})
			case 1:
				err = nodes[0].Group("g").Send(1, seqMsg{Seq: i})
			default:
				err = nodes[0].SendAll(1, seqMsg{Seq: i})
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	go func() {
		for i := range count {
			if err := nodes[2].Send(dst.id, 2, seqMsg{Seq: i}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	next := map[int]int{1: 0, 2: 0}
	for next[1] < count || next[2] < count {
		f := dst.next(t, ctx)
		var m seqMsg
		if err := json.Unmarshal([]byte(f.data), &m); err != nil {
			t.Fatal(err)
		}
		if m.Seq != next[int(f.op)] {
			t.Fatalf("origin %d: got seq %d, want %d", f.op, m.Seq, next[int(f.op)])
		}
		next[int(f.op)]++
	}
}

func TestSendByIDErrors(t *testing.T) {
	_, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 20*time.Second)
	gone := dial(t, nodes[1])
	_ = gone.Close()
	waitFor(t, ctx, "node 2 to see the close", func() bool { return nodes[1].Len() == 0 })
	before := nodes[1].Stats().UnknownConn
	// A remote node cannot know at once that the connection is gone: the
	// frame is dropped there, and counted.
	if err := nodes[0].Send(gone.id, 1, map[string]int{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the drop to be counted", func() bool { return nodes[1].Stats().UnknownConn > before })

	// A node that is not up, or was never: at once.
	for _, id := range []uint64{7<<54 | 12345, 0, 1} {
		err := nodes[0].Send(id, 1, map[string]int{})
		if !errors.Is(err, engine.ErrUnknownConn) {
			t.Errorf("Send to %d: %v, want ErrUnknownConn", id, err)
		}
	}
	// A local id that is gone: the engine's error.
	local := dial(t, nodes[0])
	_ = local.Close()
	waitFor(t, ctx, "node 1 to see the close", func() bool { return nodes[0].Len() == 0 })
	if err := nodes[0].Send(local.id, 1, map[string]int{}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("local Send: %v, want ErrUnknownConn", err)
	}
	if err := nodes[0].Send(gone.id, 1, make(chan int)); err == nil {
		t.Error("Send of a value that is not an object succeeded")
	}
}

func TestGroupsSpanNodes(t *testing.T) {
	_, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 20*time.Second)
	members := []*client{dial(t, nodes[0]), dial(t, nodes[1]), dial(t, nodes[1])}
	outsider := dial(t, nodes[2])
	for _, cl := range members {
		if err := cl.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	room := nodes[2].Group("room") // a node with no member
	if n, err := room.LenContext(ctx); err != nil || n != 3 {
		t.Fatalf("Len = %d, %v; want 3", n, err)
	}
	ids, err := membersOf(ctx, room)
	want := []uint64{members[0].id, members[1].id, members[2].id}
	slices.Sort(want)
	if err != nil || !slices.Equal(ids, want) {
		t.Fatalf("Members = %v, %v; want %v", ids, err, want)
	}
	if err := room.Send(4, map[string]string{"to": "room"}); err != nil {
		t.Fatal(err)
	}
	for _, cl := range members {
		cl.expect(t, ctx, 4, `{"to":"room"}`)
	}
	if err := nodes[0].Group("room").SendExcept(members[2].id, 5, map[string]int{}); err != nil {
		t.Fatal(err)
	}
	members[0].expect(t, ctx, 5, `{}`)
	members[1].expect(t, ctx, 5, `{}`)
	marker(t, ctx, nodes[0], outsider, members[2])

	// Joins are local: a connection joins on its own node.
	if err := nodes[0].Group("room").Join(outsider.id); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("remote Join: %v, want ErrUnknownConn", err)
	}
	nodes[1].Group("room").Leave(members[1].id)
	_ = members[2].Close()
	waitFor(t, ctx, "the group to shrink", func() bool {
		n, err := room.LenContext(ctx)
		return err == nil && n == 1
	})
	if ids, err := membersOf(ctx, room); err != nil || !slices.Equal(ids, []uint64{members[0].id}) {
		t.Errorf("Members = %v, %v; want [%d]", ids, err, members[0].id)
	}
	if err := nodes[0].Group("").Send(1, map[string]int{}); err == nil {
		t.Error("Send to the empty group name succeeded")
	}
	if n, err := nodes[0].Group("nobody").LenContext(ctx); n != 0 || err != nil {
		t.Errorf("empty group: %d, %v", n, err)
	}
}

func TestPresence(t *testing.T) {
	_, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 20*time.Second)
	var clients []*client
	for i, n := range nodes {
		for range i + 1 {
			clients = append(clients, dial(t, n))
		}
	}
	// Counts travel with the heartbeats.
	waitFor(t, ctx, "heartbeats with the counts", func() bool {
		for _, n := range nodes {
			for _, info := range n.Nodes() {
				if info.Conns != info.Node {
					return false
				}
			}
		}
		return true
	})
	for _, n := range nodes {
		infos := n.Nodes()
		for i, info := range infos {
			if info.Node != i+1 || info.Self != (info.Node == n.Number()) {
				t.Errorf("node %d: entry %d: %+v", n.Number(), i, info)
			}
			// A hello sent before the server listened carries none; the
			// heartbeats after it do.
			if want := nodes[i].Addr().String(); info.Addr != want && info.Addr != "" {
				t.Errorf("node %d: node %d's address %q, want %q", n.Number(), info.Node, info.Addr, want)
			}
			if info.Epoch != nodes[i].Epoch() {
				t.Errorf("node %d: node %d's epoch %d, want %d", n.Number(), info.Node, info.Epoch, nodes[i].Epoch())
			}
		}
		if total, err := n.LenContext(ctx); err != nil || total != 6 {
			t.Errorf("node %d: Len = %d, %v; want 6", n.Number(), total, err)
		}
	}
	want := idsOf(nil)
	for _, cl := range clients {
		want = append(want, cl.id)
	}
	slices.Sort(want)
	for _, n := range nodes {
		if conns, err := n.ConnsContext(ctx); err != nil || !slices.Equal(idsOf(conns), want) {
			t.Errorf("node %d: ConnsContext = %v, %v; want %v", n.Number(), idsOf(conns), err, want)
		}
	}
	gone := clients[5]
	_ = gone.Close()
	waitFor(t, ctx, "the close", func() bool { return nodes[2].Len() == 2 })
	for _, n := range nodes {
		if conns, err := n.ConnsContext(ctx); err != nil || slices.Contains(idsOf(conns), gone.id) || len(conns) != 5 {
			t.Errorf("node %d: ConnsContext after a close = %v, %v", n.Number(), idsOf(conns), err)
		}
	}
	// A handle for a connection of another node names its node; none for
	// a node that is not up.
	c, ok := nodes[0].Conn(clients[1].id)
	if !ok || c.RemoteAddr() != "node 2" || c.Value() != nil || c.Context().Err() != nil {
		t.Fatalf("Conn of node 2's connection: %v, %v", c, ok)
	}
	// Its Close asks node 2 to close it.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-clients[1].Done():
	case <-ctx.Done():
		t.Fatal("the connection closed through another node's handle stays open")
	}
	if _, ok := nodes[0].Conn(9<<54 | 1); ok {
		t.Error("Conn on a node that is not up")
	}
}

func TestOptions(t *testing.T) {
	ns := startNATS(t)
	nc := connectInProcess(t, ns)
	bad := map[string][]cluster.Option{
		"prefix":    {cluster.WithSubjectPrefix("a.*")},
		"prefix2":   {cluster.WithSubjectPrefix("a..b")},
		"heartbeat": {cluster.WithHeartbeat(time.Second, time.Second)},
		"interval":  {cluster.WithHeartbeat(0, time.Second)},
		"call":      {cluster.WithCallTimeout(0)},
		"queued":    {cluster.WithMaxQueued(0)},
		"pending":   {cluster.WithMaxPending(-1)},
		"logger":    {cluster.WithLogger(nil)},
	}
	for name, opts := range bad {
		if _, err := cluster.New(nc, 1, opts...); !errors.Is(err, cluster.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	for _, num := range []int{0, -1, cluster.MaxNode + 1} {
		if _, err := cluster.New(nc, num); !errors.Is(err, cluster.ErrInvalidOption) {
			t.Errorf("node number %d: %v", num, err)
		}
	}
	if _, err := cluster.New(nil, 1); !errors.Is(err, cluster.ErrInvalidOption) {
		t.Errorf("nil connection: %v", err)
	}
	// A node serves one server; a server never started shuts down
	// cleanly, and refuses traffic; a node whose server has stopped does
	// not start again.
	n := newNode(t, nc, 1)
	if _, err := engine.NewServer(serverRouter(), engine.WithBackend(n.cl)); err == nil {
		t.Error("a node attached to two servers")
	}
	if err := n.cl.SendConfirm(ctxFor(t, time.Second), 2<<54|1, 1, map[string]int{}, func(error) {}); err == nil {
		t.Error("SendConfirm before Start succeeded")
	}
	if err := n.Close(); err != nil {
		t.Error(err)
	}
	if err := n.Start(ctxFor(t, time.Second), "127.0.0.1:0"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestNodeNumberTaken(t *testing.T) {
	ns, _ := newCluster(t, 1)
	n := newNode(t, connectInProcess(t, ns), 1)
	defer n.Close()
	if err := n.Start(ctxFor(t, 10*time.Second), "127.0.0.1:0"); !errors.Is(err, cluster.ErrNodeTaken) {
		t.Fatalf("Start with a taken number: %v, want ErrNodeTaken", err)
	}
}

func TestBounds(t *testing.T) {
	_, nodes := newCluster(t, 2, cluster.WithMaxQueued(512), cluster.WithMaxPending(1))
	ctx := ctxFor(t, 20*time.Second)
	remote := dial(t, nodes[1])
	big := map[string]string{"pad": fmt.Sprintf("%0600d", 0)}
	if err := nodes[0].Send(remote.id, 1, big); !errors.Is(err, cluster.ErrBusFull) {
		t.Errorf("Send over WithMaxQueued: %v, want ErrBusFull", err)
	}
	// One call waits; a second one finds the table full.
	slow := make(chan error, 1)
	if err := nodes[0].CallAsync(ctx, remote.id, opSlow, nil, nil, func(err error) { slow <- err }); err != nil {
		t.Fatal(err)
	}
	<-remote.slowIn
	if err := nodes[0].Call(ctx, remote.id, opAdd, addReq{}, nil); !errors.Is(err, cluster.ErrBusFull) {
		t.Errorf("Call over WithMaxPending: %v, want ErrBusFull", err)
	}
	remote.unblock()
	if err := <-slow; err != nil {
		t.Errorf("slow call: %v", err)
	}
	if err := nodes[0].Call(ctx, remote.id, opAdd, addReq{}, nil); err != nil {
		t.Errorf("Call once there is room: %v", err)
	}
}

// confirm runs SendConfirm and waits for its outcome: the error it
// returned at once, or the one done got.
func confirm(t *testing.T, ctx context.Context, from *node, id uint64, v any) (error, bool) {
	t.Helper()
	ch := make(chan error, 1)
	if err := from.SendConfirm(ctx, id, 4, v, func(err error) { ch <- err }); err != nil {
		return err, false
	}
	select {
	case err := <-ch:
		return err, true
	case <-ctx.Done():
		t.Fatalf("SendConfirm to %d: no outcome: %v", id, ctx.Err())
	}
	return nil, false
}

func TestSendConfirm(t *testing.T) {
	_, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 20*time.Second)
	remote, local := dial(t, nodes[1]), dial(t, nodes[0])
	for _, cl := range []*client{remote, local} {
		if err, async := confirm(t, ctx, nodes[0], cl.id, map[string]int{"n": 1}); err != nil || !async {
			t.Fatalf("SendConfirm to %d: %v (from done: %v)", cl.id, err, async)
		}
		cl.expect(t, ctx, 4, `{"n":1}`)
	}

	// A connection that is gone, on another node: done says so, at once,
	// without the node being down.
	_ = remote.Close()
	waitFor(t, ctx, "node 2 to see the close", func() bool { return nodes[1].Len() == 0 })
	err, async := confirm(t, ctx, nodes[0], remote.id, map[string]int{})
	if !async || !errors.Is(err, engine.ErrUnknownConn) || errors.Is(err, cluster.ErrNodeDown) {
		t.Errorf("SendConfirm to a closed remote connection: %v (from done: %v), want ErrUnknownConn only", err, async)
	}
	// On this node, or on a node that is not up: the error at once.
	_ = local.Close()
	waitFor(t, ctx, "node 1 to see the close", func() bool { return nodes[0].Len() == 0 })
	for _, id := range []uint64{local.id, 7<<54 | 12345} {
		if err, async := confirm(t, ctx, nodes[0], id, map[string]int{}); async || !errors.Is(err, engine.ErrUnknownConn) {
			t.Errorf("SendConfirm to %d: %v (from done: %v), want ErrUnknownConn at once", id, err, async)
		}
	}
	if err := nodes[0].SendConfirm(ctx, remote.id, 4, map[string]int{}, nil); err == nil {
		t.Error("SendConfirm without done succeeded")
	}
}
