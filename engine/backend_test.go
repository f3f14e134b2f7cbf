// This file tests the backend seam: in-process servers linked by an
// in-memory backend behave as one, and a backend's calls are counted.

package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// memBus links the backends of in-process servers, as a message bus links
// a cluster's machines.
type memBus struct {
	mu    sync.Mutex
	nodes []*memBackend
	ids   atomic.Uint64 // net ids, unique across the bus
}

// memBackend is one server's backend on a memBus. Everything it carries
// crosses as JSON, as over a network; it counts what the server asks.
type memBackend struct {
	bus  *memBus
	host *engine.Host

	attaches, starts, stops, publishes, netIDs, queries atomic.Int64
	failAttach                                          error
}

func (b *memBackend) Attach(h *engine.Host) error {
	b.attaches.Add(1)
	if b.failAttach != nil {
		return b.failAttach
	}
	b.host = h
	b.bus.mu.Lock()
	b.bus.nodes = append(b.bus.nodes, b)
	b.bus.mu.Unlock()
	return nil
}

func (b *memBackend) Start(context.Context) error { b.starts.Add(1); return nil }
func (b *memBackend) Stop(context.Context) error  { b.stops.Add(1); return nil }
func (b *memBackend) NetID() uint64               { b.netIDs.Add(1); return b.bus.ids.Add(1) }

// others returns the bus's other backends.
func (b *memBackend) others() []*memBackend {
	b.bus.mu.Lock()
	defer b.bus.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(b.bus.nodes), func(o *memBackend) bool { return o == b })
}

func (b *memBackend) Publish(p engine.Publication) error {
	b.publishes.Add(1)
	for _, o := range b.others() {
		if err := o.host.Deliver(p); err != nil {
			return err
		}
	}
	return nil
}

func (b *memBackend) Conn(id uint64) (handler.Conn, error) {
	for _, o := range b.others() {
		if o.host.Has(id) {
			return remoteConn{id: id, host: o.host}, nil
		}
	}
	return nil, fmt.Errorf("net id %d: %w", id, engine.ErrUnknownConn)
}

func (b *memBackend) Query(ctx context.Context, q engine.Query) (engine.Answer, error) {
	b.queries.Add(1)
	var a engine.Answer
	for _, o := range b.others() {
		x := o.host.Answer(q)
		a.Count += x.Count
		a.IDs = append(a.IDs, x.IDs...)
	}
	return a, ctx.Err()
}

// remoteConn is the handle for a connection another server holds: sends
// and calls go through that server's host, a failure as its reason and
// message only, as a backend carries them.
type remoteConn struct {
	id   uint64
	host *engine.Host
}

func (r remoteConn) ID() uint64 { return r.id }

func (r remoteConn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err != nil {
		return err
	}
	return r.host.Send(r.id, op, obj)
}

func (r remoteConn) SendRaw(op codec.Opcode, obj []byte) error { return r.host.Send(r.id, op, obj) }

func (r remoteConn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	obj, err := codec.Marshal(req)
	if err != nil {
		return err
	}
	type outcome struct {
		reply           []byte
		reason, message string
		failed          bool
	}
	out := make(chan outcome, 1)
	err = r.host.CallAsync(ctx, r.id, op, obj, func(reply []byte, err error) {
		if err != nil {
			f := handler.Failure(err)
			out <- outcome{reason: f.Reason, message: f.Message, failed: true}
			return
		}
		out <- outcome{reply: reply}
	})
	if err != nil {
		return err
	}
	select {
	case o := <-out:
		if o.failed {
			return handler.FromWire(o.reason, o.message)
		}
		return codec.Unmarshal(o.reply, resp)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r remoteConn) CallAsync(context.Context, codec.Opcode, any, any, func(error)) error {
	return errors.ErrUnsupported
}
func (r remoteConn) Close() error             { return r.host.Close(r.id) }
func (r remoteConn) Value() any               { return nil }
func (r remoteConn) SetValue(any)             {}
func (r remoteConn) RemoteAddr() string       { return "" }
func (r remoteConn) Context() context.Context { return context.Background() }

// Opcodes of these tests' clients.
const (
	opNote codec.Opcode = 20 // one-way: recorded
	opMark codec.Opcode = 21 // one-way: recorded, to show what came before
	opNope codec.Opcode = 22 // call: fails with ArgumentMissing
)

// node is one server of a test cluster.
type node struct {
	srv  *engine.Server
	be   *memBackend
	ids  chan uint64 // net ids of connections as they connect
	gone chan uint64 // net ids of connections as they close
}

// startCluster starts n servers linked by one bus; a connection's
// credentials are {"user": name}, its identity name.
func startCluster(t *testing.T, n int) []*node {
	t.Helper()
	bus := &memBus{}
	check := func(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
		var v struct{ User string }
		err := json.Unmarshal(creds, &v)
		return v.User, err
	}
	nodes := make([]*node, n)
	for i := range nodes {
		nd := &node{be: &memBackend{bus: bus}, ids: make(chan uint64, 16), gone: make(chan uint64, 16)}
		nd.srv = startServer(t, handler.NewRouter(), engine.WithBackend(nd.be), engine.WithAuth(check, testTimeout),
			engine.WithOnConnect(func(c handler.Conn) { nd.ids <- c.ID() }),
			engine.WithOnDisconnect(func(c handler.Conn, _ error) { nd.gone <- c.ID() }))
		nodes[i] = nd
	}
	return nodes
}

// member is a client of a test cluster, by its net id on its server.
type member struct {
	t   *testing.T
	id  uint64
	cl  *engine.Client
	got chan string // "op object" of each one-way frame received
}

// join dials nd as user and returns the client once the server has it.
func (nd *node) join(t *testing.T, user string) *member {
	t.Helper()
	m := &member{t: t, got: make(chan string, 64)}
	r := handler.NewRouter()
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		m.got <- fmt.Sprintf("%d %s", op, data)
		return nil
	})
	handler.HandleCall(r, opSum, sum)
	handler.HandleCall(r, opNope, func(handler.Conn, struct{}) (struct{}, error) {
		return struct{}{}, handler.ArgumentMissing("Expected argument 'x'")
	})
	m.cl = callDial(t, nd.srv.Addr().String(), r, engine.WithCredentials(map[string]string{"user": user}))
	select {
	case m.id = <-nd.ids:
	case <-time.After(testTimeout):
		t.Fatal("no connection on the server")
	}
	return m
}

// expect fails the test unless the next frame m receives is want.
func (m *member) expect(want string) {
	m.t.Helper()
	select {
	case got := <-m.got:
		if got != want {
			m.t.Fatalf("conn %d got %q, want %q", m.id, got, want)
		}
	case <-time.After(testTimeout):
		m.t.Fatalf("conn %d got nothing, want %q", m.id, want)
	}
}

// expectNone shows that m received nothing so far: a marker sent to it
// by its own server now comes first.
func (m *member) expectNone(srv *engine.Server) {
	m.t.Helper()
	if err := srv.Send(m.id, opMark, map[string]int{"mark": 1}); err != nil {
		m.t.Fatal(err)
	}
	m.expect(`21 {"mark":1}`)
}

// idsOf returns the net ids of cs, sorted.
func idsOf(cs []handler.Conn) []uint64 {
	out := make([]uint64, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID())
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...uint64) []uint64 { slices.Sort(ids); return ids }

// TestBackendSendAll sends to all, and to all but one, from each server:
// every server's connections get it once.
func TestBackendSendAll(t *testing.T) {
	nodes := startCluster(t, 3)
	a, a2 := nodes[0].join(t, "a"), nodes[0].join(t, "a2")
	b, c := nodes[1].join(t, "b"), nodes[2].join(t, "c")
	all := []*member{a, a2, b, c}
	if err := nodes[1].srv.SendAll(opNote, map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		m.expect(`20 {"n":1}`)
	}
	if err := nodes[2].srv.SendAllRaw(opNote, []byte(` {"n":2} `)); err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		m.expect(`20 {"n":2}`)
	}
	if err := nodes[0].srv.SendAllExcept(c.id, opNote, map[string]int{"n": 3}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{a, a2, b} {
		m.expect(`20 {"n":3}`)
	}
	c.expectNone(nodes[2].srv)
	if err := nodes[2].srv.SendAllExcept(a2.id, opNote, map[string]int{"n": 4}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{a, b, c} {
		m.expect(`20 {"n":4}`)
	}
	a2.expectNone(nodes[0].srv)
	if n, err := nodes[1].srv.LenContext(testContext(t)); n != 4 || err != nil || nodes[1].srv.Len() != 1 {
		t.Errorf("LenContext = %d, %v, Len = %d; want 4 and 1", n, err, nodes[1].srv.Len())
	}
	cs, err := nodes[2].srv.ConnsContext(testContext(t))
	if got, want := idsOf(cs), sorted(a.id, a2.id, b.id, c.id); err != nil || !slices.Equal(got, want) {
		t.Errorf("ConnsContext = %v, %v; want %v", got, err, want)
	}
}

// TestBackendGroups sends to a group with members on three servers, counts
// and lists them, and sees a closed member leave.
func TestBackendGroups(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0].join(t, "a"), nodes[1].join(t, "b"), nodes[2].join(t, "c")
	out := nodes[1].join(t, "out")
	for i, m := range []*member{a, b, c} {
		if err := nodes[i].srv.Group("room").Join(m.id); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[0].srv.Group("room").Join(b.id); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("Join of another server's connection: %v, want ErrUnknownConn", err)
	}
	room := nodes[2].srv.Group("room")
	if err := room.Send(opNote, map[string]string{"to": "room"}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{a, b, c} {
		m.expect(`20 {"to":"room"}`)
	}
	out.expectNone(nodes[1].srv)
	if err := nodes[0].srv.Group("room").SendExcept(b.id, opNote, map[string]int{"n": 2}); err != nil {
		t.Fatal(err)
	}
	a.expect(`20 {"n":2}`)
	c.expect(`20 {"n":2}`)
	b.expectNone(nodes[1].srv)
	out.expectNone(nodes[1].srv)

	ctx := testContext(t)
	if n, err := room.LenContext(ctx); n != 3 || err != nil || room.Len() != 1 {
		t.Errorf("LenContext = %d, %v, Len = %d; want 3 and 1", n, err, room.Len())
	}
	ms, err := nodes[0].srv.Group("room").MembersContext(ctx)
	if got, want := idsOf(ms), sorted(a.id, b.id, c.id); err != nil || !slices.Equal(got, want) {
		t.Errorf("MembersContext = %v, %v; want %v", got, err, want)
	}
	b.cl.Close()
	if id := <-nodes[1].gone; id != b.id {
		t.Fatalf("closed %d, want %d", id, b.id)
	}
	ms, err = room.MembersContext(ctx)
	if got, want := idsOf(ms), sorted(a.id, c.id); err != nil || !slices.Equal(got, want) {
		t.Errorf("MembersContext after a member closed = %v, %v; want %v", got, err, want)
	}
	if n, err := nodes[0].srv.Group("room").LenContext(ctx); n != 2 || err != nil {
		t.Errorf("LenContext after a member closed = %d, %v; want 2", n, err)
	}
}

// TestBackendByID sends and calls by net id both ways between servers,
// and a call's failure reason travels back.
func TestBackendByID(t *testing.T) {
	nodes := startCluster(t, 2)
	a, b := nodes[0].join(t, "a"), nodes[1].join(t, "b")
	ctx := testContext(t)
	for _, tc := range []struct {
		from *engine.Server
		to   *member
	}{{nodes[0].srv, b}, {nodes[1].srv, a}} {
		if err := tc.from.Send(tc.to.id, opNote, map[string]uint64{"to": tc.to.id}); err != nil {
			t.Fatal(err)
		}
		tc.to.expect(fmt.Sprintf(`20 {"to":%d}`, tc.to.id))
		var resp sumResp
		if err := tc.from.Call(ctx, tc.to.id, opSum, sumReq{A: 2, B: 3}, &resp); err != nil || resp.Sum != 5 {
			t.Errorf("Call to net id %d = %+v, %v; want sum 5", tc.to.id, resp, err)
		}
		err := tc.from.Call(ctx, tc.to.id, opNope, struct{}{}, nil)
		if handler.ReasonOf(err) != handler.ReasonArgumentMissing {
			t.Errorf("failed call to net id %d: %v, want reason %s", tc.to.id, err, handler.ReasonArgumentMissing)
		}
		rc, ok := tc.from.Conn(tc.to.id)
		if !ok || rc.ID() != tc.to.id {
			t.Fatalf("Conn(%d) = %v, %v", tc.to.id, rc, ok)
		}
		if err := rc.SendRaw(opNote, []byte(`{"by":"handle"}`)); err != nil {
			t.Fatal(err)
		}
		tc.to.expect(`20 {"by":"handle"}`)
	}
	const unknown = 1 << 40
	if err := nodes[0].srv.Send(unknown, opNote, struct{}{}); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("Send to an id no server holds: %v, want ErrUnknownConn", err)
	}
	if err := nodes[0].srv.Call(ctx, unknown, opSum, sumReq{}, nil); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("Call to an id no server holds: %v, want ErrUnknownConn", err)
	}
	if _, ok := nodes[0].srv.Conn(unknown); ok {
		t.Error("Conn found an id no server holds")
	}
	if err := nodes[1].srv.Host().Send(a.id, opNote, []byte(`{}`)); !errors.Is(err, engine.ErrUnknownConn) {
		t.Errorf("Host.Send to another server's connection: %v, want ErrUnknownConn", err)
	}
}

// TestBackendConnsOf finds an identity authenticated on other servers.
func TestBackendConnsOf(t *testing.T) {
	nodes := startCluster(t, 3)
	_ = nodes[0].join(t, "bob")
	x, y := nodes[1].join(t, "alice"), nodes[2].join(t, "alice")
	if got := nodes[0].srv.ConnsOf("alice"); len(got) != 0 {
		t.Errorf("ConnsOf (local) = %v, want none", idsOf(got))
	}
	cs, err := nodes[0].srv.ConnsOfContext(testContext(t), "alice")
	if got, want := idsOf(cs), sorted(x.id, y.id); err != nil || !slices.Equal(got, want) {
		t.Fatalf("ConnsOfContext = %v, %v; want %v", got, err, want)
	}
	for _, c := range cs {
		if err := c.Send(opNote, map[string]string{"hi": "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	x.expect(`20 {"hi":"alice"}`)
	y.expect(`20 {"hi":"alice"}`)
	cs, err = nodes[1].srv.ConnsOfContext(testContext(t), "alice")
	if got, want := idsOf(cs), sorted(x.id, y.id); err != nil || !slices.Equal(got, want) {
		t.Errorf("ConnsOfContext with one here = %v, %v; want %v", got, err, want)
	}
}

// TestBackendLifecycle checks that a backend is attached, started and
// stopped once each, that it gives the net ids, and that a bad one fails
// NewServer.
func TestBackendLifecycle(t *testing.T) {
	if _, err := engine.NewServer(handler.NewRouter(), engine.WithBackend(nil)); !errors.Is(err, engine.ErrInvalidOption) {
		t.Errorf("WithBackend(nil): %v, want ErrInvalidOption", err)
	}
	refused := errors.New("no bus")
	if _, err := engine.NewServer(handler.NewRouter(), engine.WithBackend(&memBackend{bus: &memBus{}, failAttach: refused})); !errors.Is(err, refused) {
		t.Errorf("NewServer with a failing Attach: %v, want %v", err, refused)
	}
	be := &memBackend{bus: &memBus{}}
	be.bus.ids.Store(1000)
	ids := make(chan uint64, 1)
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithBackend(be), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	if err != nil {
		t.Fatal(err)
	}
	if be.attaches.Load() != 1 || be.starts.Load() != 0 || be.host != srv.Host() {
		t.Fatalf("after NewServer: %d attaches, %d starts; want 1, 0, to the server's host", be.attaches.Load(), be.starts.Load())
	}
	ctx := testContext(t)
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err == nil {
		t.Error("a second Start succeeded")
	}
	_ = callDial(t, srv.Addr().String(), handler.NewRouter())
	if id := <-ids; id != 1001 || be.netIDs.Load() != 1 {
		t.Errorf("net id %d after %d NetID calls, want 1001 from the backend's one", id, be.netIDs.Load())
	}
	if be.starts.Load() != 1 || be.stops.Load() != 0 {
		t.Errorf("running: %d starts, %d stops; want 1, 0", be.starts.Load(), be.stops.Load())
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_ = srv.Shutdown(ctx)
	_ = srv.Close()
	if be.starts.Load() != 1 || be.stops.Load() != 1 {
		t.Errorf("after shutdowns: %d starts, %d stops; want 1, 1", be.starts.Load(), be.stops.Load())
	}
	lone := &memBackend{bus: &memBus{}}
	srv, err = engine.NewServer(handler.NewRouter(), engine.WithBackend(lone))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil || lone.starts.Load()+lone.stops.Load() != 0 {
		t.Errorf("closed unstarted: %v, %d starts, %d stops; want none", err, lone.starts.Load(), lone.stops.Load())
	}
}

// TestBackendCounts checks that one send to all or to a group is one
// publication and a local delivery, that what a backend delivers and a
// go-away are not published, and that the lookups ask once.
func TestBackendCounts(t *testing.T) {
	nodes := startCluster(t, 1) // a bus with nobody else on it
	nd := nodes[0]
	m := nd.join(t, "m")
	if err := nd.srv.SendAll(opNote, map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	m.expect(`20 {"n":1}`)
	if got := nd.be.publishes.Load(); got != 1 {
		t.Fatalf("one SendAll made %d publications, want 1", got)
	}
	if err := nd.srv.Group("g").Join(m.id); err != nil {
		t.Fatal(err)
	}
	if err := nd.srv.Group("g").Send(opNote, map[string]int{"n": 2}); err != nil {
		t.Fatal(err)
	}
	m.expect(`20 {"n":2}`)
	if err := nd.srv.Host().Deliver(engine.Publication{Op: opNote, Obj: []byte(`{"n":3}`), Group: "g"}); err != nil {
		t.Fatal(err)
	}
	m.expect(`20 {"n":3}`)
	if err := nd.srv.Host().Deliver(engine.Publication{Op: opNote, Obj: []byte(`[3]`)}); !errors.Is(err, codec.ErrNotObject) {
		t.Errorf("Deliver of a non-object: %v, want ErrNotObject", err)
	}
	if got := nd.be.publishes.Load(); got != 2 {
		t.Errorf("after a group send and a delivery: %d publications, want 2", got)
	}
	if _, err := nd.srv.Group("g").LenContext(testContext(t)); err != nil || nd.be.queries.Load() != 1 {
		t.Errorf("LenContext: %v, %d queries; want 1", err, nd.be.queries.Load())
	}
	ctx, cancel := context.WithTimeout(testContext(t), 0)
	defer cancel()
	_ = nd.srv.GoAway(ctx, "restart") // m goes, told by this server only
	if got := nd.be.publishes.Load(); got != 2 {
		t.Errorf("GoAway published: %d publications, want 2", got)
	}
}
