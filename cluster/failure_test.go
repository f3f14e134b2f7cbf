package cluster_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/cluster/embedded"
	"github.com/simplerpc/simplerpc/engine"
)

type nodeEvent struct {
	info   cluster.NodeInfo
	up     bool
	reason error
	at     time.Time
}

// watchNodes returns options that report node events on a channel.
func watchNodes() (chan nodeEvent, []cluster.Option) {
	ch := make(chan nodeEvent, 64)
	return ch, []cluster.Option{
		cluster.WithOnNodeUp(func(info cluster.NodeInfo) { ch <- nodeEvent{info: info, up: true, at: time.Now()} }),
		cluster.WithOnNodeDown(func(info cluster.NodeInfo, reason error) {
			ch <- nodeEvent{info: info, reason: reason, at: time.Now()}
		}),
	}
}

// nextEvent returns the next event about node num going up (or down),
// skipping others.
func nextEvent(t *testing.T, ctx context.Context, ch chan nodeEvent, num int, up bool) nodeEvent {
	t.Helper()
	for {
		select {
		case ev := <-ch:
			if ev.info.Node == num && ev.up == up {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no event about node %d: %v", num, ctx.Err())
		}
	}
}

func TestKilledNodeIsNoticed(t *testing.T) {
	ns := startNATS(t)
	ctx := ctxFor(t, 30*time.Second)
	events, opts := watchNodes()
	n1 := startNode(t, connectInProcess(t, ns), 1, opts...)
	n2 := startNode(t, connectInProcess(t, ns), 2)
	nc3 := connectInProcess(t, ns)
	n3 := startNode(t, nc3, 3)
	formed(t, ctx, n1, n2, n3)
	c1, c3 := dial(t, n1), dial(t, n3)
	for _, cl := range []*client{c1, c3} {
		if err := cl.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := n2.Group("room").LenContext(ctx); err != nil || n != 2 {
		t.Fatalf("Len = %d, %v", n, err)
	}

	// Node 3 loses NATS without a goodbye, as if killed.
	killed := time.Now()
	nc3.Close()

	// A call to its connection does not wait for its deadline: NATS
	// reports that nothing listens any more, or the heartbeat timeout ends
	// it.
	err := n1.Call(ctx, c3.id, opAdd, addReq{}, nil)
	if !errors.Is(err, cluster.ErrNodeDown) || !errors.Is(err, engine.ErrUnknownConn) {
		t.Fatalf("call to the killed node: %v, want ErrNodeDown and ErrUnknownConn", err)
	}
	t.Logf("call to the killed node: %v", err) // NATS's "no responders", or the heartbeat timeout
	ev := nextEvent(t, ctx, events, 3, false)
	if ev.up || !errors.Is(ev.reason, cluster.ErrHeartbeatTimeout) {
		t.Fatalf("event %+v, want down with ErrHeartbeatTimeout", ev)
	}
	// Its last heartbeat came at most an interval before it died.
	if d := ev.at.Sub(killed); d < testTimeout-testInterval {
		t.Errorf("noticed %v after the kill, before the heartbeat timeout", d)
	}

	// Once noticed, relays to its ids fail at once, and its connections
	// are gone from groups and presence.
	if err := n1.Send(c3.id, 1, map[string]int{}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("Send to the dead node: %v", err)
	}
	if ids, err := membersOf(ctx, n1.Group("room")); err != nil || !slices.Equal(ids, []uint64{c1.id}) {
		t.Errorf("Members = %v, %v; want [%d]", ids, err, c1.id)
	}
	if got := len(n1.Nodes()); got != 2 {
		t.Errorf("node 1 sees %d nodes", got)
	}
	waitFor(t, ctx, "node 2 to notice", func() bool { return len(n2.Nodes()) == 2 })
	if total, err := n2.LenContext(ctx); err != nil || total != 1 {
		t.Errorf("Len = %d, %v; want 1", total, err)
	}

	// Node 3 still serves its own connections; cross-node traffic fails
	// with a clear error.
	if err := n3.Send(c3.id, 2, map[string]int{"local": 1}); err != nil {
		t.Fatal(err)
	}
	c3.expect(t, ctx, 2, `{"local":1}`)
	if err := n3.Send(c1.id, 2, map[string]int{}); !errors.Is(err, cluster.ErrBusDown) {
		t.Errorf("cross-node Send without NATS: %v, want ErrBusDown", err)
	}
	if err := n3.SendAll(3, map[string]int{}); !errors.Is(err, cluster.ErrBusDown) {
		t.Errorf("SendAll without NATS: %v, want ErrBusDown", err)
	}
	c3.expect(t, ctx, 3, `{}`)
	if err := n3.Call(ctx, c1.id, opAdd, addReq{}, nil); !errors.Is(err, cluster.ErrBusDown) {
		t.Errorf("cross-node Call without NATS: %v, want ErrBusDown", err)
	}
}

func TestNodeLeavesAndRestarts(t *testing.T) {
	ns := startNATS(t)
	ctx := ctxFor(t, 30*time.Second)
	events, opts := watchNodes()
	n1 := startNode(t, connectInProcess(t, ns), 1, opts...)
	nc2 := connectInProcess(t, ns)
	n2 := startNode(t, nc2, 2)
	formed(t, ctx, n1, n2)
	if ev := nextEvent(t, ctx, events, 2, true); !ev.up || ev.info.Epoch != n2.Epoch() {
		t.Fatalf("event %+v, want node 2 up", ev)
	}
	old := dial(t, n2)
	pending := make(chan error, 1)
	if err := n1.CallAsync(ctx, old.id, opSlow, nil, nil, func(err error) { pending <- err }); err != nil {
		t.Fatal(err)
	}
	<-old.slowIn

	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_ = n2.Shutdown(sctx) // the slow call holds the grace period to its end
	if ev := nextEvent(t, ctx, events, 2, false); ev.up || !errors.Is(ev.reason, cluster.ErrNodeLeft) {
		t.Fatalf("event %+v, want down with ErrNodeLeft", ev)
	}
	// Its answer (engine.ErrClosed) or the goodbye ends the call.
	if err := <-pending; !errors.Is(err, engine.ErrClosed) &&
		!(errors.Is(err, cluster.ErrNodeLeft) && errors.Is(err, engine.ErrUnknownConn)) {
		t.Errorf("call pending on the node that left: %v", err)
	}
	// Sends and calls by id to a node known down say so, at once; its
	// connections are not found.
	if err := n1.Send(old.id, 1, map[string]int{}); !errors.Is(err, engine.ErrUnknownConn) || !errors.Is(err, cluster.ErrNodeDown) {
		t.Errorf("Send to the node that left: %v, want ErrNodeDown and ErrUnknownConn", err)
	}
	if err := n1.Call(ctx, old.id, opAdd, addReq{}, nil); !errors.Is(err, engine.ErrUnknownConn) || !errors.Is(err, cluster.ErrNodeDown) {
		t.Errorf("Call to the node that left: %v, want ErrNodeDown and ErrUnknownConn", err)
	}
	if c, ok := n1.Conn(old.id); ok || c != nil {
		t.Errorf("Conn of the node that left: %v, %v", c, ok)
	}

	// The number comes back with a new epoch: ids of the earlier boot are
	// never reused, and fail at once.
	n2b := startNode(t, nc2, 2)
	ev := nextEvent(t, ctx, events, 2, true)
	if !ev.up || ev.info.Epoch != n2b.Epoch() || n2b.Epoch() <= n2.Epoch() {
		t.Fatalf("event %+v, want node 2 up with a later epoch than %d", ev, n2.Epoch())
	}
	err := n1.Call(ctx, old.id, opAdd, addReq{}, nil)
	if !errors.Is(err, engine.ErrUnknownConn) || errors.Is(err, cluster.ErrNodeDown) {
		t.Errorf("call to an id of the earlier boot: %v, want ErrUnknownConn alone", err)
	}
	fresh := dial(t, n2b)
	if fresh.id <= old.id || cluster.NodeOf(fresh.id) != 2 {
		t.Errorf("new id %d, old %d", fresh.id, old.id)
	}
	var r addResp
	if err := n1.Call(ctx, fresh.id, opAdd, addReq{A: 1, B: 1}, &r); err != nil || r.Sum != 2 {
		t.Errorf("call to the restarted node: %v, %v", r, err)
	}
}

func TestNATSRestart(t *testing.T) {
	ns := startNATS(t)
	port := ns.Addr().(*net.TCPAddr).Port
	ctx := ctxFor(t, 60*time.Second)
	// The URL path: the nodes connect as external clients would.
	connect := func() *nats.Conn {
		nc, err := nats.Connect(ns.URL(), nats.Token(ns.Token()), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1),
			nats.ReconnectJitter(0, 0), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	nc1, nc2 := connect(), connect()
	n1, n2 := startNode(t, nc1, 1), startNode(t, nc2, 2)
	formed(t, ctx, n1, n2)
	c1, c2 := dial(t, n1), dial(t, n2)

	accepted, got := map[int]bool{}, map[int]bool{}
	seq := 0
	send := func() error {
		err := n1.Send(c2.id, 1, seqMsg{Seq: seq})
		if err == nil {
			accepted[seq] = true
		}
		seq++
		return err
	}
	receive := func(until int, contiguous func(seq int) bool) {
		t.Helper()
		for last := -1; last < until; {
			f := c2.next(t, ctx)
			var m seqMsg
			if err := json.Unmarshal([]byte(f.data), &m); err != nil {
				t.Fatal(err)
			}
			if m.Seq <= last || !accepted[m.Seq] || got[m.Seq] {
				t.Fatalf("got seq %d after %d (accepted: %v, twice: %v)", m.Seq, last, accepted[m.Seq], got[m.Seq])
			}
			if contiguous(m.Seq) && m.Seq != last+1 {
				t.Fatalf("seq %d lost (got %d)", last+1, m.Seq)
			}
			got[m.Seq] = true
			last = m.Seq
		}
	}
	for range 100 {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	receive(99, func(int) bool { return true })

	_ = ns.Close()
	waitFor(t, ctx, "sends to fail with ErrBusDown", func() bool {
		return errors.Is(send(), cluster.ErrBusDown)
	})
	// Local traffic goes on.
	if err := n1.Send(c1.id, 2, map[string]int{"local": 1}); err != nil {
		t.Fatal(err)
	}
	c1.expect(t, ctx, 2, `{"local":1}`)
	if err := n1.Call(ctx, c2.id, opAdd, addReq{}, nil); !errors.Is(err, cluster.ErrBusDown) {
		t.Errorf("Call without NATS: %v", err)
	}

	restarted := time.Now()
	startNATS(t, embedded.WithPort(port), embedded.WithToken(ns.Token()))
	// Each node has heard the other since the restart: both are connected
	// and subscribed again.
	waitFor(t, ctx, "both nodes back", func() bool {
		for _, pair := range [][2]*node{{n1, n2}, {n2, n1}} {
			i := slices.IndexFunc(pair[0].Nodes(), func(i cluster.NodeInfo) bool { return i.Node == pair[1].Number() })
			if i < 0 || pair[0].Nodes()[i].LastSeen.Before(restarted) {
				return false
			}
		}
		return true
	})
	resumed := seq
	for range 100 {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	var r addResp
	if err := n1.Call(ctx, c2.id, opAdd, addReq{A: 2, B: 2}, &r); err != nil || r.Sum != 4 {
		t.Fatalf("call after the restart: %v, %v", r, err)
	}
	// Everything sent once both are back arrives, in order, once; what
	// was accepted as NATS went down may be lost (at most once), never
	// doubled.
	receive(seq-1, func(s int) bool { return s > resumed })
}

// wire builds a bus message as docs/CLUSTER.md lays it out: the header
// (version 2, kind, node, epoch), then fields, big-endian.
func wire(kind byte, node uint16, epoch uint64, fields ...any) []byte {
	b := []byte{2, kind}
	b = binary.BigEndian.AppendUint16(b, node)
	b = binary.BigEndian.AppendUint64(b, epoch)
	for _, f := range fields {
		switch f := f.(type) {
		case uint64:
			b = binary.BigEndian.AppendUint64(b, f)
		case uint32:
			b = binary.BigEndian.AppendUint32(b, f)
		case uint16:
			b = binary.BigEndian.AppendUint16(b, f)
		case byte:
			b = append(b, f)
		case string:
			b = append(b, f...)
		}
	}
	return b
}

// Kinds of bus messages (docs/CLUSTER.md, "Messages").
const (
	wHello, wBeat, wBye, wProbe, wSend, wAll, wGroup, wCall, wQuery, wReply, wAnswer byte = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
)

func TestBadBusMessagesAreCountedNotDelivered(t *testing.T) {
	ns, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 30*time.Second)
	n1, n2 := nodes[0], nodes[1]
	c2, c3 := dial(t, n2), dial(t, nodes[2])
	if err := c2.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
		t.Fatal(err)
	}
	bus := connectInProcess(t, ns)
	e1 := n1.Epoch()
	to2 := "simplerpc.node.2"
	reply2 := "simplerpc.reply.2." + strconv.FormatUint(n2.Epoch(), 10) + ".99999"
	reply1 := "simplerpc.reply.1." + strconv.FormatUint(e1, 10) + ".99999" // no request of node 1 has that number: its answer is late there
	before := n2.Stats()
	msgs := []struct {
		subject string
		data    []byte
		reply   string
	}{
		// Malformed: 9.
		{to2, []byte("hello"), ""},
		{"simplerpc.all", nil, ""},
		{to2, wire(wSend, 1, e1)[:7], ""},
		{to2, append([]byte{1}, wire(wSend, 1, e1, c2.id, uint32(1), `{}`)[1:]...), ""},       // version 1
		{to2, wire(wSend, 1, e1, c2.id, uint32(1), `{"a":`), ""},                              // bad JSON
		{to2, wire(wSend, 1, e1, c2.id, uint32(1), `[1]`), ""},                                // not an object
		{to2, wire(wAll, 1, e1, uint64(0), uint32(1), `{}`), ""},                              // a broadcast on a node subject
		{to2, wire(wCall, 1, e1, c2.id, uint32(opAdd), uint64(1000000), `{}`), "elsewhere.1"}, // a foreign reply subject
		{"simplerpc.all", wire(wGroup, 1, e1, uint64(0), uint32(1), uint16(200), "room", `{}`), ""},
		// From a node that is not up, or from another epoch: 3.
		{to2, wire(wSend, 77, 1, c2.id, uint32(1), `{}`), ""},
		{to2, wire(wSend, 1, e1+1, c2.id, uint32(1), `{}`), ""},
		{"simplerpc.all", wire(wAll, 9, 5, uint64(0), uint32(1), `{}`), ""},
		// For ids node 2 does not hold: 3.
		{to2, wire(wSend, 1, e1, uint64(2<<54|1), uint32(1), `{}`), ""}, // an earlier boot's
		{to2, wire(wSend, 1, e1, c3.id, uint32(1), `{}`), ""},           // node 3's
		{to2, wire(wCall, 1, e1, c3.id, uint32(opAdd), uint64(1000000), `{}`), reply1},
		// Late or bogus answers: 1.
		{reply2, wire(wReply, 1, e1, byte(0), `{}`), ""},
		// Conflicts: an older epoch of node 1, node 2's own number: 2.
		{"simplerpc.presence", wire(wBeat, 1, e1-1, uint64(0)), ""},
		{to2, wire(wSend, 2, n2.Epoch()+1, c2.id, uint32(1), `{}`), ""},
	}
	for _, m := range msgs {
		if err := bus.PublishMsg(&nats.Msg{Subject: m.subject, Reply: m.reply, Data: m.data}); err != nil {
			t.Fatal(err)
		}
	}
	want := cluster.Stats{Malformed: 9, UnknownNode: 3, UnknownConn: 3, Late: 1, Conflicts: 2}
	waitFor(t, ctx, "the bad messages to be counted", func() bool {
		s := n2.Stats()
		return s.Malformed-before.Malformed == want.Malformed && s.UnknownNode-before.UnknownNode == want.UnknownNode &&
			s.UnknownConn-before.UnknownConn == want.UnknownConn && s.Late-before.Late == want.Late &&
			s.Conflicts-before.Conflicts == want.Conflicts
	})
	// None reached a connection; the cluster works on.
	marker(t, ctx, n1, c2, c3)
	var r addResp
	if err := n1.Call(ctx, c2.id, opAdd, addReq{A: 1, B: 2}, &r); err != nil || r.Sum != 3 {
		t.Fatalf("call after bad input: %v, %v", r, err)
	}
	if len(n2.Nodes()) != 3 {
		t.Errorf("node 2 sees %v", n2.Nodes())
	}
	// A well-formed message from a live node is acted on: the layout is
	// the documented one.
	if err := bus.Publish(to2, wire(wSend, 1, e1, c2.id, uint32(4), `{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	c2.expect(t, ctx, 4, `{"forged":true}`)
}

// TestRequestFromAnUnknownNodeIsAnswered: a node that took another for
// down (or never heard of it) answers its requests with an error at once,
// rather than leaving them to their deadline, and asks for presence, so
// that the two hear each other again.
func TestRequestFromAnUnknownNodeIsAnswered(t *testing.T) {
	ns, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 30*time.Second)
	c2 := dial(t, nodes[1])
	bus := connectInProcess(t, ns)
	replies, err := bus.SubscribeSync("simplerpc.reply.7.5.>")
	if err != nil {
		t.Fatal(err)
	}
	presence, err := bus.SubscribeSync("simplerpc.presence")
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Flush(); err != nil {
		t.Fatal(err)
	}
	// Node 7, epoch 5, never announced itself.
	call := wire(wCall, 7, 5, c2.id, uint32(opAdd), uint64(1000000), `{}`)
	if err := bus.PublishMsg(&nats.Msg{Subject: "simplerpc.node.2", Reply: "simplerpc.reply.7.5.1", Data: call}); err != nil {
		t.Fatal(err)
	}
	m, err := replies.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Data) < 13 || m.Data[1] != wReply || m.Data[12] != 10 || !strings.Contains(string(m.Data[13:]), "does not take node 7") {
		t.Errorf("answer %q, want a reply of status 10 (an error's text)", m.Data)
	}
	for {
		m, err := presence.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatal("node 2 asked for no presence:", err)
		}
		if m.Data[1] == wHello && binary.BigEndian.Uint16(m.Data[2:]) == 2 {
			break
		}
	}
}
