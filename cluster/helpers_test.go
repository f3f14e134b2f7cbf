package cluster_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/cluster/embedded"
	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
)

// Test heartbeats: often enough that a dead node is noticed in about two
// seconds, with a timeout twenty intervals long so that a loaded machine
// (-race, -count=20, a load average of 16 on two cores) does not lose a
// live node.
const (
	testInterval = 100 * time.Millisecond
	testTimeout  = 2 * time.Second
)

// Opcodes of the test servers and clients.
const (
	opWhoami   codec.Opcode = 100 // call, server: {"id": net id}
	opJoin     codec.Opcode = 101 // call, server: join {"group"}
	opRelay    codec.Opcode = 102 // one-way, server: CallAsync {"id","a","b"}, sends opRelayed back
	opRelayed  codec.Opcode = 103 // one-way, client: the relay's outcome
	opAdd      codec.Opcode = 20  // call, client: {"a","b"} -> {"sum"}
	opRequired codec.Opcode = 21  // call, client: requires "x"
	opRefuse   codec.Opcode = 22  // call, client: fails with ArgumentValueError
	opSlow     codec.Opcode = 23  // call, client: answers when released
	opToGroup  codec.Opcode = 104 // call, server: Group(group).Send(opGot, {"n"})
	opSendTo   codec.Opcode = 105 // call, server: Send(id, opGot, {"n"})
	opToAll    codec.Opcode = 106 // call, server: SendAllExcept(id, opGot, {"n"})
	opGot      codec.Opcode = 30  // one-way, client: what the three above send
)

type frame struct {
	op   codec.Opcode
	data string
}

type idMsg struct {
	ID uint64 `json:"id"`
}

type groupMsg struct {
	Group string `json:"group"`
}

type addReq struct {
	ID uint64 `json:"id,omitempty"`
	A  int    `json:"a"`
	B  int    `json:"b"`
}

type addResp struct {
	Sum int    `json:"sum"`
	Err string `json:"err,omitempty"`
}

type requiredReq struct {
	X int `json:"x" simplerpc:"required"`
}

// handMsg asks a server's handler to send {"n": N} on opGot: to a group,
// to net id ID, or to all but net id ID.
type handMsg struct {
	Group string `json:"group,omitempty"`
	ID    uint64 `json:"id,omitempty"`
	N     int    `json:"n"`
}

type nMsg struct {
	N int `json:"n"`
}

type seqMsg struct {
	Seq int `json:"seq"`
}

// ctxFor returns a context bounded by d, cancelled by the test's cleanup
// (after the cleanups registered later: it outlives t.Context).
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or ctx ends (testkit.WaitFor).
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(ctx, t, what, cond)
}

func startNATS(t testing.TB, opts ...embedded.Option) *embedded.Server {
	t.Helper()
	ns, err := embedded.Start(ctxFor(t, 10*time.Second), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Close() })
	return ns
}

func connectInProcess(t testing.TB, ns *embedded.Server) *nats.Conn {
	t.Helper()
	nc, err := ns.Connect(nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// node is one server of a test cluster and its backend: the server's
// methods are the cluster-wide API; the node's are what only a cluster
// has. Number, Epoch, Nodes, Stats and SendConfirm are the node's.
type node struct {
	*engine.Server
	cl *cluster.Node
}

func (n *node) Number() int               { return n.cl.Number() }
func (n *node) Epoch() uint64             { return n.cl.Epoch() }
func (n *node) Nodes() []cluster.NodeInfo { return n.cl.Nodes() }
func (n *node) Stats() cluster.Stats      { return n.cl.Stats() }

// SendConfirm is the node's.
func (n *node) SendConfirm(ctx context.Context, id uint64, op codec.Opcode, v any, done func(error)) error {
	return n.cl.SendConfirm(ctx, id, op, v, done)
}

// CallAsync calls net id id, whatever server holds it, without waiting:
// what a handler does with engine.ServerOf(c).Conn(id).
func (n *node) CallAsync(ctx context.Context, id uint64, op codec.Opcode, req, resp any, done func(error)) error {
	c, ok := n.Conn(id)
	if !ok {
		return fmt.Errorf("net id %d: %w", id, engine.ErrUnknownConn)
	}
	return c.CallAsync(ctx, op, req, resp, done)
}

// membersOf returns the net ids of g's members on every server, in
// increasing order.
func membersOf(ctx context.Context, g engine.Group) ([]uint64, error) {
	conns, err := g.MembersContext(ctx)
	return idsOf(conns), err
}

// idsOf returns the net ids of conns, in increasing order.
func idsOf(conns []handler.Conn) []uint64 {
	ids := make([]uint64, 0, len(conns))
	for _, c := range conns {
		ids = append(ids, c.ID())
	}
	slices.Sort(ids)
	return ids
}

// serverRouter is what every test server serves, alone or as a node: its
// handlers reach their server with engine.ServerOf alone.
func serverRouter() *handler.Router {
	r := handler.NewRouter()
	handler.HandleCall(r, opWhoami, func(c handler.Conn, _ struct{}) (idMsg, error) {
		return idMsg{ID: c.ID()}, nil
	})
	handler.HandleCall(r, opJoin, func(c handler.Conn, m groupMsg) (struct{}, error) {
		return struct{}{}, engine.ServerOf(c).Group(m.Group).Join(c.ID())
	})
	// Sends from handlers: the server's plain API, whatever the backend.
	handler.HandleCall(r, opToGroup, func(c handler.Conn, m handMsg) (struct{}, error) {
		return struct{}{}, engine.ServerOf(c).Group(m.Group).Send(opGot, nMsg{N: m.N})
	})
	handler.HandleCall(r, opSendTo, func(c handler.Conn, m handMsg) (struct{}, error) {
		return struct{}{}, engine.ServerOf(c).Send(m.ID, opGot, nMsg{N: m.N})
	})
	handler.HandleCall(r, opToAll, func(c handler.Conn, m handMsg) (struct{}, error) {
		return struct{}{}, engine.ServerOf(c).SendAllExcept(m.ID, opGot, nMsg{N: m.N})
	})
	// An inline callback that calls a connection of any node without
	// blocking its loop, and reports back to its own client.
	handler.Handle(r, opRelay, func(c handler.Conn, m addReq) error {
		resp := new(addResp)
		to, ok := engine.ServerOf(c).Conn(m.ID)
		if !ok {
			return c.Send(opRelayed, addResp{Err: "unknown connection"})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := to.CallAsync(ctx, opAdd, addReq{A: m.A, B: m.B}, resp, func(err error) {
			cancel()
			if err != nil {
				resp.Err = err.Error()
			}
			_ = c.Send(opRelayed, resp)
		})
		if err != nil {
			cancel()
			return c.Send(opRelayed, addResp{Err: err.Error()})
		}
		return nil
	})
	return r
}

// newNode makes node number num on nc, and its server.
func newNode(t testing.TB, nc *nats.Conn, num int, opts ...cluster.Option) *node {
	t.Helper()
	opts = append([]cluster.Option{cluster.WithHeartbeat(testInterval, testTimeout)}, opts...)
	cl, err := cluster.New(nc, num, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := engine.NewServer(serverRouter(), engine.WithBackend(cl))
	if err != nil {
		t.Fatal(err)
	}
	return &node{Server: srv, cl: cl}
}

// startNode starts node number num on nc, listening on loopback; it shuts
// down with the test.
func startNode(t testing.TB, nc *nats.Conn, num int, opts ...cluster.Option) *node {
	t.Helper()
	n := newNode(t, nc, num, opts...)
	testkit.Start(t, n.Server, "127.0.0.1:0")
	return n
}

// formed waits until every node sees all of them.
func formed(t testing.TB, ctx context.Context, nodes ...*node) {
	t.Helper()
	waitFor(t, ctx, "the cluster to form", func() bool {
		for _, n := range nodes {
			if len(n.Nodes()) != len(nodes) {
				return false
			}
		}
		return true
	})
}

// newCluster starts k nodes, numbered 1 to k, on one embedded NATS server
// with in-process connections.
func newCluster(t testing.TB, k int, opts ...cluster.Option) (*embedded.Server, []*node) {
	t.Helper()
	ns := startNATS(t)
	nodes := make([]*node, k)
	for i := range nodes {
		nodes[i] = startNode(t, connectInProcess(t, ns), i+1, opts...)
	}
	formed(t, ctxFor(t, 10*time.Second), nodes...)
	return ns, nodes
}

// client is a real simplerpc client connected to a node over loopback.
type client struct {
	*engine.Client
	id     uint64 // its net id on the node
	frames chan frame
	tokens chan struct{} // each lets one opSlow call answer
	stop   chan struct{} // closed at cleanup: every opSlow call answers
	slowIn chan struct{} // receives when an opSlow call arrives
}

// unblock lets one opSlow call answer. A connection's calls run one at a
// time, in order (engine.WithWorkerPool): the next waits for this one.
func (cl *client) unblock() { cl.tokens <- struct{}{} }

// target is what clients dial and markers are sent from: an
// engine.Server, or a test node.
type target interface {
	Addr() net.Addr
	Send(id uint64, op codec.Opcode, v any) error
}

// dial connects a test client to srv, with opts after the test's own.
func dial(t testing.TB, srv target, opts ...engine.ClientOption) *client {
	t.Helper()
	cl := &client{frames: make(chan frame, 4096), tokens: make(chan struct{}, 16), stop: make(chan struct{}),
		slowIn: make(chan struct{}, 16)}
	r := handler.NewRouter()
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		cl.frames <- frame{op, string(data)}
		return nil
	})
	handler.HandleCall(r, opAdd, func(_ handler.Conn, m addReq) (addResp, error) {
		return addResp{Sum: m.A + m.B}, nil
	})
	handler.HandleCall(r, opRequired, func(_ handler.Conn, m requiredReq) (struct{}, error) {
		return struct{}{}, nil
	})
	handler.HandleCall(r, opRefuse, func(_ handler.Conn, _ struct{}) (struct{}, error) {
		return struct{}{}, handler.ArgumentValueError("refused")
	})
	handler.HandleCall(r, opSlow, func(_ handler.Conn, _ struct{}) (struct{}, error) {
		cl.slowIn <- struct{}{}
		select {
		case <-cl.tokens:
		case <-cl.stop:
		}
		return struct{}{}, nil
	})
	ctx := ctxFor(t, 10*time.Second)
	c, err := engine.Dial(ctx, srv.Addr().String(), r, append([]engine.ClientOption{engine.WithWorkerPool(2, 1024)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	cl.Client = c
	t.Cleanup(func() {
		close(cl.stop)
		_ = c.Close()
		<-c.Done()
	})
	var who idMsg
	if err := c.Call(ctx, opWhoami, nil, &who); err != nil {
		t.Fatal(err)
	}
	cl.id = who.ID
	return cl
}

// next returns the client's next frame.
func (cl *client) next(t testing.TB, ctx context.Context) frame {
	t.Helper()
	select {
	case f := <-cl.frames:
		return f
	case <-ctx.Done():
		t.Fatalf("client %d: no frame: %v", cl.id, ctx.Err())
	}
	return frame{}
}

// expect checks the client's next frame.
func (cl *client) expect(t testing.TB, ctx context.Context, op codec.Opcode, data string) {
	t.Helper()
	if f := cl.next(t, ctx); f.op != op || f.data != data {
		t.Fatalf("client %d: got %d %s, want %d %s", cl.id, f.op, f.data, op, data)
	}
}

// marker sends a marker frame to each client from node and checks that it
// is the next frame each gets: nothing else arrived before it.
func marker(t testing.TB, ctx context.Context, srv target, clients ...*client) {
	t.Helper()
	for i, cl := range clients {
		data := fmt.Sprintf(`{"marker":%d}`, i)
		if err := srv.Send(cl.id, 9, map[string]int{"marker": i}); err != nil {
			t.Fatal(err)
		}
		cl.expect(t, ctx, 9, data)
	}
}
