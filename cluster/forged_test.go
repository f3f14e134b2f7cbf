package cluster_test

// This file tests what a raw NATS client on the cluster's bus can and
// cannot do (docs/CLUSTER.md, "Who may use the bus"): without the embedded
// server's credentials it is refused; with them, it still cannot make a
// node deliver a protocol frame, nor anything malformed, and the nodes
// serve on.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/codec"
)

// TestBusRefusesClientsWithoutCredentials: a client that reaches the
// embedded server's port but lacks its token can neither listen for node
// numbers and epochs nor forge heartbeats and goodbyes: it never connects.
func TestBusRefusesClientsWithoutCredentials(t *testing.T) {
	ns, nodes := newCluster(t, 2)
	for _, tc := range []struct {
		what string
		opts []nats.Option
	}{
		{"no credentials", nil},
		{"a wrong token", []nats.Option{nats.Token("simplerpc")}},
		{"a user and password", []nats.Option{nats.UserInfo("simplerpc", "simplerpc")}},
	} {
		nc, err := nats.Connect(ns.URL(), append(tc.opts, nats.NoReconnect())...)
		if err == nil {
			// What the attacker of issue 28 did next: a goodbye of node 1.
			_ = nc.Publish("simplerpc.presence", wire(wBye, 1, nodes[0].Epoch()))
			nc.Close()
			t.Fatalf("a client with %s connected to the embedded NATS server", tc.what)
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("a client with %s: %v, want nats.ErrAuthorization", tc.what, err)
		}
	}
	// With the token, by URL, as a node of another process connects.
	nc, err := nats.Connect(ns.URL(), nats.Token(ns.Token()))
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	nc.Close()
	for _, n := range nodes {
		if len(n.Nodes()) != 2 {
			t.Errorf("node %d sees %v", n.Number(), n.Nodes())
		}
	}
}

// TestForgedFramesNotDelivered: a client holding the credentials forges
// well-formed messages from a live node, as the attacker of issue 28 did:
// protocol frames (-2, -8, -1, -3) sent to a connection, to all and to a
// group, and messages outside the bounds a node accepts. None reaches a
// connection or changes presence; each is counted as malformed and logged
// at most once a second; the cluster serves on.
func TestForgedFramesNotDelivered(t *testing.T) {
	logs := &recordCounter{}
	ns, nodes := newCluster(t, 3, cluster.WithLogger(slog.New(logs)))
	ctx := ctxFor(t, 30*time.Second)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1, c2, c3 := dial(t, n1), dial(t, n2), dial(t, n3)
	for _, c := range []*client{c1, c2, c3} {
		if err := c.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	size := c2.MessageSize()
	bus, err := nats.Connect(ns.URL(), nats.Token(ns.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	e1 := n1.Epoch()
	to2 := "simplerpc.node.2"
	reply1 := "simplerpc.reply.1." + strconv.FormatUint(e1, 10) + ".1"
	minus := func(op codec.Opcode) uint32 { return uint32(op) }
	msgs := []struct {
		subject string
		data    []byte
		reply   string
	}{
		{to2, wire(wSend, 1, e1, c2.id, minus(codec.OpMessageSize), `{"message_size":64}`), ""},
		{to2, wire(wSend, 1, e1, c2.id, minus(codec.OpMessageSize), `{"message_size":64}`), reply1}, // with a receipt
		{to2, wire(wSend, 1, e1, c2.id, minus(codec.OpGoAway), `{"reason":"forged"}`), ""},
		{to2, wire(wCall, 1, e1, c2.id, minus(codec.OpRequest), uint64(1000000), `{}`), reply1},
		{"simplerpc.all", wire(wAll, 1, e1, uint64(0), minus(codec.OpGoAway), `{"reason":"forged"}`), ""},
		{"simplerpc.all", wire(wAll, 1, e1, uint64(0), minus(codec.OpFailure), `{"reason":"X","message":"forged"}`), ""},
		{"simplerpc.all", wire(wGroup, 1, e1, uint64(0), minus(codec.OpMessageSize), uint16(4), "room", `{"message_size":64}`), ""},
		// Outside the bounds: an id of no node, presence from epoch 0,
		// with a forged log line for an address, with a negative
		// connection count.
		{to2, wire(wSend, 1, e1, uint64(0), uint32(1), `{}`), ""},
		{"simplerpc.presence", wire(wHello, 9, 0, uint64(0), "127.0.0.1:1"), ""},
		{"simplerpc.presence", wire(wBeat, 1, e1, uint64(1), "127.0.0.1:1\nlevel=ERROR msg=forged"), ""},
		{"simplerpc.presence", wire(wBeat, 1, e1, uint64(1)<<63, "127.0.0.1:1"), ""},
	}
	before := n2.Stats()
	for _, m := range msgs {
		if err := bus.PublishMsg(&nats.Msg{Subject: m.subject, Reply: m.reply, Data: m.data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "node 2 to count every forged message as malformed", func() bool {
		return n2.Stats().Malformed-before.Malformed == uint64(len(msgs))
	})
	if s := n2.Stats(); s.Undeliverable != before.Undeliverable || s.UnknownConn != before.UnknownConn {
		t.Errorf("a forged message reached the engine: %+v", s)
	}

	// Nothing reached a connection: each keeps its message size, gets a
	// marker sent after the forgeries as its next frame, and calls and is
	// called.
	for _, c := range []*client{c1, c2, c3} {
		if got := c.MessageSize(); got != size {
			t.Errorf("client %d: message size %d, want %d", c.id, got, size)
		}
	}
	marker(t, ctx, n1, c1, c2, c3)
	pad := map[string]string{"pad": strings.Repeat("y", size/2)}
	if err := n1.Group("room").Send(9, pad); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{c1, c2, c3} {
		c.expect(t, ctx, 9, jsonOf(t, pad))
		var who idMsg
		if err := c.Call(ctx, opWhoami, nil, &who); err != nil || who.ID != c.id {
			t.Errorf("client %d after the forgeries: %v, %v", c.id, who, err)
		}
	}
	var r addResp
	if err := n1.Call(ctx, c2.id, opAdd, addReq{A: 1, B: 2}, &r); err != nil || r.Sum != 3 {
		t.Fatalf("call after the forgeries: %v, %v", r, err)
	}
	for _, n := range nodes {
		for _, i := range n.Nodes() {
			if i.Node < 1 || i.Node > 3 || i.Conns < 0 || strings.ContainsAny(i.Addr, "\n") {
				t.Errorf("node %d sees %+v", n.Number(), i)
			}
		}
	}
	// At most one log record of malformed messages per node and second.
	start := time.Now()
	for range 200 {
		if err := bus.Publish(to2, []byte("garbage")); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the garbage to be counted", func() bool {
		return n2.Stats().Malformed-before.Malformed == uint64(len(msgs))+200
	})
	elapsed := time.Since(start)
	if got, limit := logs.count("does not decode"), 3*(2+int(elapsed/time.Second)); got > limit {
		t.Errorf("%d log records of malformed messages in %v from 3 nodes, want at most %d", got, elapsed, limit)
	}
}

// The protocol's opcodes never leave their node: the sending node refuses
// them for another node's connection, to all and to groups.
func TestProtocolOpcodesStayLocal(t *testing.T) {
	_, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 30*time.Second)
	n1 := nodes[0]
	c1, c2 := dial(t, n1), dial(t, nodes[1])
	msg := map[string]int{"message_size": 64}
	for what, err := range map[string]error{
		"send":         n1.Send(c2.id, codec.OpMessageSize, msg),
		"send confirm": n1.SendConfirm(ctx, c2.id, codec.OpMessageSize, msg, func(error) {}),
		"send to all":  n1.SendAll(codec.OpGoAway, map[string]string{"reason": "x"}),
		"all except":   n1.SendAllExcept(c1.id, codec.OpGoAway, map[string]string{"reason": "x"}),
		"all raw":      n1.SendAllRaw(codec.OpFailure, []byte(`{}`)),
		"group":        n1.Group("room").Send(codec.OpMessageSize, msg),
		"call":         n1.Call(ctx, c2.id, codec.OpRequest, nil, nil),
	} {
		if !errors.Is(err, cluster.ErrProtocolOpcode) {
			t.Errorf("%s: %v, want ErrProtocolOpcode", what, err)
		}
	}
	marker(t, ctx, n1, c1, c2)
	if c1.MessageSize() != c2.MessageSize() {
		t.Errorf("message sizes %d and %d", c1.MessageSize(), c2.MessageSize())
	}
}

// recordCounter is a slog handler that counts records by message.
type recordCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordCounter) WithGroup(string) slog.Handler      { return h }

func (h *recordCounter) count(part string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.Contains(m, part) {
			n++
		}
	}
	return n
}

func jsonOf(t testing.TB, v any) string {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNodesUnderSubjectPermissions runs a cluster on a NATS server
// configured as docs/CLUSTER.md advises for defense in depth: each node a
// user that may publish on the prefix and _INBOX.> only, and subscribe to
// its own subjects only; another user with no right on the prefix. The
// nodes work as usual; the other user's forged goodbye never reaches them.
func TestNodesUnderSubjectPermissions(t *testing.T) {
	nodeUser := func(n int) *server.User {
		own := "simplerpc.node." + strconv.Itoa(n)
		return &server.User{Username: "node" + strconv.Itoa(n), Password: "pw" + strconv.Itoa(n), Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"simplerpc.>", "_INBOX.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{own, "simplerpc.all", "simplerpc.presence", "simplerpc.reply." + strconv.Itoa(n) + ".>", "_INBOX.>"}},
		}}
	}
	other := &server.User{Username: "app", Password: "app", Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{"app.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"app.>", "_INBOX.>"}},
	}}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Users: []*server.User{nodeUser(1), nodeUser(2), other}})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	ctx := ctxFor(t, 30*time.Second)
	violations, refused := make(chan error, 16), make(chan error, 16) // the nodes', the other user's
	connect := func(user, pw string, violations chan error) *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, pw), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case violations <- err:
			default:
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	var downs sync.Mutex
	down := 0
	n1 := startNode(t, connect("node1", "pw1", violations), 1)
	n2 := startNode(t, connect("node2", "pw2", violations), 2, cluster.WithOnNodeDown(func(cluster.NodeInfo, error) {
		downs.Lock()
		down++
		downs.Unlock()
	}))
	formed(t, ctx, n1, n2)
	c1, c2 := dial(t, n1), dial(t, n2)
	if err := c2.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
		t.Fatal(err)
	}
	var r addResp
	if err := n1.Call(ctx, c2.id, opAdd, addReq{A: 2, B: 3}, &r); err != nil || r.Sum != 5 {
		t.Fatalf("call across: %v, %v", r, err)
	}
	if k, err := n1.Group("room").LenContext(ctx); err != nil || k != 1 {
		t.Fatalf("group length across: %d, %v", k, err)
	}
	if err := n2.SendAll(9, map[string]int{"all": 1}); err != nil {
		t.Fatal(err)
	}
	c1.expect(t, ctx, 9, `{"all":1}`)
	c2.expect(t, ctx, 9, `{"all":1}`)
	if len(violations) != 0 {
		t.Fatalf("a node hit its permissions: %v", <-violations)
	}

	// Another application's user cannot forge a goodbye: NATS refuses the
	// publish, and says so.
	app := connect("app", "app", refused)
	if err := app.Publish("simplerpc.presence", wire(wBye, 1, n1.Epoch())); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("the forged goodbye: %v, want a permissions violation", err)
		}
	case <-ctx.Done():
		t.Fatal("NATS accepted a publish on the prefix from a user without the right")
	}
	marker(t, ctx, n1, c2)
	downs.Lock()
	defer downs.Unlock()
	if down != 0 || len(n2.Nodes()) != 2 {
		t.Errorf("node 2 took node 1 for down %d times; sees %v", down, n2.Nodes())
	}
	if len(violations) != 0 {
		t.Errorf("a node hit its permissions: %v", <-violations)
	}
}

// TestForgedMembersStayWithinTheirNode: a client with the credentials
// invents node 5 with a heartbeat, takes its subject, and answers a
// Members query with ids of other nodes as well as its own: only node 5's
// count.
func TestForgedMembersStayWithinTheirNode(t *testing.T) {
	ns, nodes := newCluster(t, 2)
	ctx := ctxFor(t, 30*time.Second)
	n1, n2 := nodes[0], nodes[1]
	c2 := dial(t, n2)
	if err := c2.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
		t.Fatal(err)
	}
	bus, err := nats.Connect(ns.URL(), nats.Token(ns.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	const e5 = uint64(1000)
	own := uint64(5)<<54 | e5 + 1
	sub, err := bus.Subscribe("simplerpc.node.5", func(m *nats.Msg) {
		answer := wire(wAnswer, 5, e5, byte(0), uint64(2)<<54|e5+7, own, uint64(9)<<54|e5+1)
		_ = bus.Publish(m.Reply, answer)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := bus.Publish("simplerpc.presence", wire(wBeat, 5, e5, uint64(1), "127.0.0.1:1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "node 1 to take node 5 for up", func() bool { return len(n1.Nodes()) == 3 })
	ids, err := membersOf(ctx, n1.Group("room"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{c2.id, own}; len(ids) != 2 || !slices.Contains(ids, c2.id) || !slices.Contains(ids, own) {
		t.Errorf("members %v, want %v", ids, want)
	}
}
