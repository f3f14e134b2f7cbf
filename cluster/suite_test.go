package cluster_test

// This file holds the application-level suite that runs, case by case,
// against a server alone (no backend) and against three servers whose
// backends are nodes of one cluster on an embedded NATS server, with the
// same handler code (serverRouter): what code written for one node does
// must not change on three.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
)

// world is where a case runs: servers, one alone or three of a cluster.
// Client i of a case connects to server i % len(servers).
type world struct {
	servers []*engine.Server
	ncs     []*nats.Conn // the nodes' NATS connections; nil alone
}

// on returns the server client i connects to.
func (w *world) on(i int) *engine.Server { return w.servers[i%len(w.servers)] }

// dial connects client i, authenticating as user.
func (w *world) dial(t testing.TB, i int, user string) *client {
	t.Helper()
	return dial(t, w.on(i), engine.WithCredentials(map[string]string{"user": user}))
}

// suiteAuth accepts {"user": NAME} and gives the connection NAME as its
// identity.
func suiteAuth(_ context.Context, _ handler.Conn, credentials []byte) (string, error) {
	var m struct {
		User string `json:"user"`
	}
	if err := json.Unmarshal(credentials, &m); err != nil || m.User == "" {
		return "", errors.New("no user")
	}
	return m.User, nil
}

// suiteServer makes a server of the suite: backend b, or none.
func suiteServer(t testing.TB, b engine.Backend) *engine.Server {
	t.Helper()
	opts := []engine.ServerOption{engine.WithAuth(suiteAuth, 10*time.Second)}
	if b != nil {
		opts = append(opts, engine.WithBackend(b))
	}
	srv, err := engine.NewServer(serverRouter(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Start(t, srv, "127.0.0.1:0")
}

func alone(t testing.TB) *world {
	return &world{servers: []*engine.Server{suiteServer(t, nil)}}
}

func threeNodes(t testing.TB) *world {
	ns := startNATS(t)
	w := &world{}
	var nodes []*cluster.Node
	for num := 1; num <= 3; num++ {
		nc := connectInProcess(t, ns)
		n, err := cluster.New(nc, num, cluster.WithHeartbeat(testInterval, testTimeout))
		if err != nil {
			t.Fatal(err)
		}
		w.servers = append(w.servers, suiteServer(t, n))
		w.ncs = append(w.ncs, nc)
		nodes = append(nodes, n)
	}
	waitFor(t, ctxFor(t, 10*time.Second), "the cluster to form", func() bool {
		for _, n := range nodes {
			if len(n.Nodes()) != 3 {
				return false
			}
		}
		return true
	})
	return w
}

// got is the frame a handler's send makes.
func got(n int) string { return fmt.Sprintf(`{"n":%d}`, n) }

// suiteCases are the rules of the application-level API. Each gets a
// world of its own.
var suiteCases = []struct {
	name        string
	clusterOnly bool
	run         func(t *testing.T, ctx context.Context, w *world)
}{
	{name: "to all", run: func(t *testing.T, ctx context.Context, w *world) {
		var cls []*client
		for i := range 6 {
			cls = append(cls, w.dial(t, i, "u"))
		}
		// From a handler on server 1, then from the last server.
		if err := cls[0].Call(ctx, opToAll, handMsg{N: 1}, nil); err != nil {
			t.Fatal(err)
		}
		if err := w.on(5).SendAll(opGot, nMsg{N: 2}); err != nil {
			t.Fatal(err)
		}
		// Two origins: no order between their frames.
		for _, cl := range cls {
			var seen []string
			for range 2 {
				f := cl.next(t, ctx)
				if f.op != opGot {
					t.Fatalf("client %d: frame %d %s", cl.id, f.op, f.data)
				}
				seen = append(seen, f.data)
			}
			if slices.Sort(seen); !slices.Equal(seen, []string{got(1), got(2)}) {
				t.Errorf("client %d got %v", cl.id, seen)
			}
		}
	}},
	{name: "to all except one", run: func(t *testing.T, ctx context.Context, w *world) {
		var cls []*client
		for i := range 6 {
			cls = append(cls, w.dial(t, i, "u"))
		}
		left := cls[4]
		if err := cls[2].Call(ctx, opToAll, handMsg{ID: left.id, N: 3}, nil); err != nil {
			t.Fatal(err)
		}
		for i, cl := range cls {
			if cl != left {
				cl.expect(t, ctx, opGot, got(3))
			} else {
				marker(t, ctx, w.on(2), cls[i]) // from the sender's server: after the send, if it came
			}
		}
	}},
	{name: "groups with members on several servers", run: func(t *testing.T, ctx context.Context, w *world) {
		members := []*client{w.dial(t, 0, "u"), w.dial(t, 1, "u"), w.dial(t, 2, "u")}
		outsider := w.dial(t, 3, "u")
		for _, m := range members {
			if err := m.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
				t.Fatal(err)
			}
		}
		// engine.ServerOf(c).Group(g).Send in a handler on one server
		// reaches the members on every server.
		if err := outsider.Call(ctx, opToGroup, handMsg{Group: "room", N: 4}, nil); err != nil {
			t.Fatal(err)
		}
		for _, m := range members {
			m.expect(t, ctx, opGot, got(4))
		}
		marker(t, ctx, w.on(3), outsider)
		want := []uint64{members[0].id, members[1].id, members[2].id}
		slices.Sort(want)
		for _, s := range w.servers {
			if n, err := s.Group("room").LenContext(ctx); err != nil || n != 3 {
				t.Errorf("LenContext = %d, %v; want 3", n, err)
			}
			if ids, err := membersOf(ctx, s.Group("room")); err != nil || !slices.Equal(ids, want) {
				t.Errorf("MembersContext = %v, %v; want %v", ids, err, want)
			}
		}
		if err := w.on(1).Group("room").SendExcept(members[0].id, opGot, nMsg{N: 5}); err != nil {
			t.Fatal(err)
		}
		members[1].expect(t, ctx, opGot, got(5))
		members[2].expect(t, ctx, opGot, got(5))
		marker(t, ctx, w.on(1), members[0])
	}},
	{name: "send by id both ways", run: func(t *testing.T, ctx context.Context, w *world) {
		cls := []*client{w.dial(t, 0, "u"), w.dial(t, 1, "u"), w.dial(t, 2, "u")}
		for si, s := range w.servers {
			for _, cl := range cls {
				if err := s.Send(cl.id, opGot, nMsg{N: si}); err != nil {
					t.Fatal(err)
				}
				cl.expect(t, ctx, opGot, got(si))
			}
		}
		// From handlers: each client has its server send to each client.
		for i, from := range cls {
			for _, to := range cls {
				if err := from.Call(ctx, opSendTo, handMsg{ID: to.id, N: 10 + i}, nil); err != nil {
					t.Fatal(err)
				}
				to.expect(t, ctx, opGot, got(10+i))
			}
		}
		// A handle for a connection of any server sends the same way.
		for _, s := range w.servers {
			c, ok := s.Conn(cls[2].id)
			if !ok {
				t.Fatalf("Conn(%d) not found", cls[2].id)
			}
			if err := c.Send(opGot, nMsg{N: 20}); err != nil {
				t.Fatal(err)
			}
			cls[2].expect(t, ctx, opGot, got(20))
		}
	}},
	{name: "call by id both ways", run: func(t *testing.T, ctx context.Context, w *world) {
		cls := []*client{w.dial(t, 0, "u"), w.dial(t, 1, "u"), w.dial(t, 2, "u")}
		for si, s := range w.servers {
			for i, cl := range cls {
				var r addResp
				if err := s.Call(ctx, cl.id, opAdd, addReq{A: si, B: i}, &r); err != nil || r.Sum != si+i {
					t.Fatalf("server %d -> client %d: %+v, %v", si, i, r, err)
				}
			}
		}
		// From an inline handler, with CallAsync on the handle: both ways.
		for _, pair := range [][2]*client{{cls[0], cls[2]}, {cls[2], cls[0]}} {
			if err := pair[0].Send(opRelay, addReq{ID: pair[1].id, A: 20, B: 22}); err != nil {
				t.Fatal(err)
			}
			pair[0].expect(t, ctx, opRelayed, `{"sum":42}`)
		}
	}},
	{name: "call failures travel back", run: func(t *testing.T, ctx context.Context, w *world) {
		remote := w.dial(t, 2, "u")
		s := w.on(0)
		var missing handler.ArgumentMissing
		if err := s.Call(ctx, remote.id, opRequired, struct{}{}, nil); !errors.As(err, &missing) ||
			string(missing) != "Expected argument 'x' in opcode 21" {
			t.Errorf("missing argument: %v", err)
		}
		var refused handler.ArgumentValueError
		if err := s.Call(ctx, remote.id, opRefuse, nil, nil); !errors.As(err, &refused) || string(refused) != "refused" {
			t.Errorf("refused: %v", err)
		}
		if err := s.Call(ctx, remote.id, 99, nil, nil); handler.ReasonOf(err) != handler.ReasonUnknownOpcode {
			t.Errorf("unknown opcode: %v", err)
		}
		_ = remote.Close()
		waitFor(t, ctx, "the close", func() bool { return w.on(2).Len() == 0 })
		if err := s.Call(ctx, remote.id, opAdd, addReq{}, nil); !errors.Is(err, engine.ErrUnknownConn) {
			t.Errorf("call to a closed connection: %v, want ErrUnknownConn", err)
		}
	}},
	{name: "identity lookup", run: func(t *testing.T, ctx context.Context, w *world) {
		alice := []*client{w.dial(t, 0, "alice"), w.dial(t, 1, "alice")}
		w.dial(t, 2, "bob")
		want := []uint64{alice[0].id, alice[1].id}
		slices.Sort(want)
		for _, s := range w.servers {
			conns, err := s.ConnsOfContext(ctx, "alice")
			if err != nil || !slices.Equal(idsOf(conns), want) {
				t.Errorf("ConnsOfContext(alice) = %v, %v; want %v", idsOf(conns), err, want)
			}
			if n, err := s.LenContext(ctx); err != nil || n != 3 {
				t.Errorf("LenContext = %d, %v; want 3", n, err)
			}
		}
		// What the lookup returns can be sent to, wherever it is.
		conns, _ := w.on(2).ConnsOfContext(ctx, "alice")
		for _, c := range conns {
			if err := c.Send(opGot, nMsg{N: 7}); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range alice {
			a.expect(t, ctx, opGot, got(7))
		}
	}},
	{name: "a connection that closes leaves its groups", run: func(t *testing.T, ctx context.Context, w *world) {
		stay, leave := w.dial(t, 0, "u"), w.dial(t, 1, "u")
		for _, m := range []*client{stay, leave} {
			if err := m.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
				t.Fatal(err)
			}
		}
		_ = leave.Close()
		for _, s := range w.servers {
			waitFor(t, ctx, "the group to shrink", func() bool {
				ids, err := membersOf(ctx, s.Group("room"))
				return err == nil && slices.Equal(ids, []uint64{stay.id})
			})
		}
		if err := w.on(2).Group("room").Send(opGot, nMsg{N: 8}); err != nil {
			t.Fatal(err)
		}
		stay.expect(t, ctx, opGot, got(8))
	}},
	{name: "a node killed", clusterOnly: true, run: func(t *testing.T, ctx context.Context, w *world) {
		c1, c3 := w.dial(t, 0, "alice"), w.dial(t, 2, "alice")
		for _, m := range []*client{c1, c3} {
			if err := m.Call(ctx, opJoin, groupMsg{Group: "room"}, nil); err != nil {
				t.Fatal(err)
			}
		}
		w.ncs[2].Close() // node 3 loses NATS without a goodbye, as if killed
		// A call to its connection does not wait for its deadline.
		if err := w.on(0).Call(ctx, c3.id, opAdd, addReq{}, nil); !errors.Is(err, engine.ErrUnknownConn) {
			t.Fatalf("call to the killed node: %v, want ErrUnknownConn", err)
		}
		s1 := w.on(0)
		waitFor(t, ctx, "node 1 to take node 3 for down", func() bool {
			_, ok := s1.Conn(c3.id)
			return !ok
		})
		if err := s1.Send(c3.id, opGot, nMsg{}); !errors.Is(err, engine.ErrUnknownConn) {
			t.Errorf("Send to the killed node: %v, want ErrUnknownConn", err)
		}
		if ids, err := membersOf(ctx, s1.Group("room")); err != nil || !slices.Equal(ids, []uint64{c1.id}) {
			t.Errorf("members = %v, %v; want [%d]", ids, err, c1.id)
		}
		if conns, err := s1.ConnsOfContext(ctx, "alice"); err != nil || !slices.Equal(idsOf(conns), []uint64{c1.id}) {
			t.Errorf("ConnsOfContext = %v, %v; want [%d]", idsOf(conns), err, c1.id)
		}
		// Node 3 serves its own connections on.
		if err := w.on(2).Send(c3.id, opGot, nMsg{N: 9}); err != nil {
			t.Fatal(err)
		}
		c3.expect(t, ctx, opGot, got(9))
	}},
}

// TestSuite runs every case on a server alone and on three nodes.
func TestSuite(t *testing.T) {
	for _, where := range []struct {
		name string
		make func(testing.TB) *world
	}{{"alone", alone}, {"three nodes", threeNodes}} {
		t.Run(where.name, func(t *testing.T) {
			for _, c := range suiteCases {
				t.Run(c.name, func(t *testing.T) {
					if c.clusterOnly && where.name == "alone" {
						t.Skip("a server alone has no other node")
					}
					w := where.make(t)
					c.run(t, ctxFor(t, 30*time.Second), w)
				})
			}
		})
	}
}
