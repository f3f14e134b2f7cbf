//go:build unix

// This file holds the handover tests: connections, calls and what cannot
// move, between two servers in one process.

package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/handoverwire"
)

// TestHandOverLive hands a raw TCP peer and a client of ours from server A
// to server B while both send: every frame arrives exactly once and in
// order, neither peer sees a close, a frame split across the handover
// completes, and the net ids, groups, identities and application values
// survive; B's own new connections get ids above the adopted ones, and no
// connect or disconnect callback runs for the connections that moved.
func TestHandOverLive(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	auth := engine.WithAuth(func(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
		var m struct {
			User string `json:"user"`
		}
		err := json.Unmarshal(creds, &m)
		return m.User, err
	}, testTimeout)
	a := newHandoverServer(t, "A", auth)
	b := newHandoverServer(t, "B", auth)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnB := dupListener(t, ln)
	if err := a.StartOn(ctx, ln); err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()

	// The raw peer authenticates, joins the room and sends 50 frames.
	p := dialRaw(t, addr)
	p.greet(1024)
	p.write(`-9{"user":"raw"}`)
	if op, obj := p.read(); op != codec.OpAuth || !strings.Contains(string(obj), `"raw"`) {
		t.Fatalf("auth answer: op %d %s", op, obj)
	}
	p.write(`1{"seq":0}`)
	if n := p.readNote(); n.Seq != 0 || n.Server != "A" {
		t.Fatalf("first echo: %+v", n)
	}
	for i := 1; i < 50; i++ {
		p.write(fmt.Sprintf(`2{"seq":%d}`, i))
	}
	for i := 1; i < 50; i++ {
		if n := p.readNote(); n.Seq != i || n.Server != "A" {
			t.Fatalf("echo %d before: %+v", i, n)
		}
	}
	rawID := a.Conns()[0].ID()

	// Our client sends all along, the handover in the middle.
	var mu sync.Mutex
	var back []handNote
	cr := handler.NewRouter()
	handler.Handle(cr, 3, func(_ handler.Conn, n handNote) error {
		mu.Lock()
		back = append(back, n)
		mu.Unlock()
		return nil
	})
	var drops chanCount
	cl, err := engine.Dial(ctx, addr, cr, engine.WithCredentials(map[string]string{"user": "client"}),
		engine.WithOnDisconnect(func(handler.Conn, error) { drops.add() }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	if err := cl.Call(ctx, 2, nil, nil); err != nil { // authenticated once it answers
		t.Fatal(err)
	}
	const total = 3000
	sent := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		for i := range total {
			if i == 100 {
				close(started)
			}
			if err := cl.Send(2, handNote{Seq: i}); err != nil {
				sent <- fmt.Errorf("send %d: %w", i, err)
				return
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond) // a steady stream, not one burst
			}
		}
		sent <- nil
	}()
	<-started

	// Half a frame waits in A's buffer when the handover begins.
	frame := []byte(`2{"seq":50}`)
	frame = append(frame, make([]byte, 1024-len(frame))...)
	for i := len(`2{"seq":50}`); i < len(frame); i++ {
		frame[i] = ' '
	}
	if _, err := p.conn.Write(frame[:600]); err != nil {
		t.Fatal(err)
	}
	rep, n := handOver(t, ctx, a.Server, b.Server)
	if rep.HandedOver != 2 || rep.GoneAway != 0 || n != 2 {
		t.Fatalf("report %+v, adopted %d: want both connections handed over", rep, n)
	}
	if err := b.StartOn(ctx, lnB); err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.Write(frame[600:]); err != nil {
		t.Fatal(err)
	}
	if n := p.readNote(); n.Seq != 50 || n.Server != "B" {
		t.Fatalf("the split frame: %+v", n)
	}
	for i := 51; i < 100; i++ {
		p.write(fmt.Sprintf(`2{"seq":%d}`, i))
		if n := p.readNote(); n.Seq != i || n.Server != "B" {
			t.Fatalf("echo %d after: %+v", i, n)
		}
	}
	if engine.Replaying(b.Server, rawID) {
		t.Error("the raw peer still reads through the replay layer once its partial frame completed")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		k := len(back)
		mu.Unlock()
		if k >= total {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d echoes came back", k, total)
		case <-time.After(5 * time.Millisecond):
		}
	}
	mu.Lock()
	fromA, fromB := 0, 0
	for i, n := range back {
		if n.Seq != i {
			t.Fatalf("echo %d of the client is frame %d: lost, repeated or out of order", i, n.Seq)
		}
		switch {
		case n.Server == "A" && fromB == 0:
			fromA++
		case n.Server == "B":
			fromB++
		default:
			t.Fatalf("echo %d from A after B's", i)
		}
	}
	mu.Unlock()
	if fromA == 0 || fromB == 0 {
		t.Fatalf("A echoed %d, B %d: the handover was not in the middle", fromA, fromB)
	}
	if drops.get() != 0 {
		t.Fatalf("the client saw %d disconnects", drops.get())
	}

	// The state survived.
	c, ok := b.Conn(rawID)
	if !ok {
		t.Fatalf("B has no net id %d; it has %d connections", rawID, b.Len())
	}
	if got := engine.IdentityOf(c); got != "raw" {
		t.Errorf("identity %q", got)
	}
	if got := c.Value(); got != fmt.Sprintf("value of %d", rawID) {
		t.Errorf("value %v", got)
	}
	if got := b.Groups(rawID); !slices.Equal(got, []string{"room"}) {
		t.Errorf("groups %v", got)
	}
	if got := b.ConnsOf("client"); len(got) != 1 {
		t.Errorf("ConnsOf(client): %d connections", len(got))
	}
	if err := b.Group("room").Send(3, handNote{Seq: 7, Server: "room"}); err != nil {
		t.Fatal(err)
	}
	if n := p.readNote(); n.Server != "room" {
		t.Fatalf("group send: %+v", n)
	}
	if a.Len() != 0 || b.Len() != 2 {
		t.Fatalf("A has %d connections, B %d", a.Len(), b.Len())
	}
	// A new connection on B: a fresh id above the adopted ones.
	q := dialRaw(t, addr)
	q.greet(1024)
	q.write(`-9{"user":"new"}`)
	q.read()
	deadline := time.After(testTimeout)
	for len(b.ConnsOf("new")) == 0 {
		select {
		case <-deadline:
			t.Fatal("the new connection did not authenticate")
		case <-time.After(time.Millisecond):
		}
	}
	if id := b.ConnsOf("new")[0].ID(); id <= max(rawID, b.ConnsOf("client")[0].ID()) {
		t.Fatalf("B's new net id %d is not above the adopted ones", id)
	}
	if got := a.connects.get(); got != 2 {
		t.Errorf("A ran %d connect callbacks, want 2", got)
	}
	if got := a.disconnects.get(); got != 0 {
		t.Errorf("A ran %d disconnect callbacks for connections it handed over", got)
	}
	if got := b.connects.get(); got != 1 {
		t.Errorf("B ran %d connect callbacks, want 1 (the new connection)", got)
	}
}

// TestHandOverCalls: a call the client makes, still running in A's worker
// pool when the handover begins, is answered by A; a call A makes on the
// client that is not answered within the wait fails with ErrHandedOver;
// the client's reply to it, which reaches B, is ignored there.
func TestHandOverCalls(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	release := make(chan struct{})
	r := handler.NewRouter()
	entered := make(chan struct{})
	handler.HandleCall(r, 4, func(handler.Conn, struct{}) (map[string]string, error) {
		close(entered)
		<-release
		return map[string]string{"server": "A"}, nil
	})
	a, err := engine.NewServer(r, engine.WithWorkerPool(2, 16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b := newHandoverServer(t, "B")
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	cr := handler.NewRouter()
	unblock := make(chan struct{})
	handler.HandleCall(cr, 9, func(handler.Conn, struct{}) (struct{}, error) {
		<-unblock
		return struct{}{}, nil
	})
	cl, err := engine.Dial(ctx, a.Addr().String(), cr, engine.WithWorkerPool(1, 16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); <-cl.Done() })
	var id uint64
	for deadline := time.Now().Add(testTimeout); ; {
		if cs := a.Conns(); len(cs) == 1 {
			id = cs[0].ID()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection")
		}
		time.Sleep(time.Millisecond)
	}
	clientCall := make(chan error, 1)
	go func() {
		var who map[string]string
		err := cl.Call(ctx, 4, nil, &who)
		if err == nil && who["server"] != "A" {
			err = fmt.Errorf("answered by %v", who)
		}
		clientCall <- err
	}()
	<-entered
	serverCall := make(chan error, 1)
	go func() { serverCall <- a.Call(ctx, id, 9, nil, nil) }()
	go func() {
		time.Sleep(50 * time.Millisecond) // the handover waits meanwhile
		close(release)
	}()
	rep, _ := handOver(t, ctx, a, b.Server)
	close(unblock)
	if rep.HandedOver != 1 {
		t.Fatalf("report %+v", rep)
	}
	if err := <-clientCall; err != nil {
		t.Fatalf("the client's call in flight: %v", err)
	}
	if err := <-serverCall; !errors.Is(err, engine.ErrHandedOver) {
		t.Fatalf("A's call in flight: %v, want ErrHandedOver", err)
	}
	// The connection works on B.
	var who map[string]string
	if err := cl.Call(ctx, 2, nil, &who); err != nil || who["server"] != "B" {
		t.Fatalf("call after: %v %v", who, err)
	}
}

// TestHandOverTLSGoesAway: a TLS connection cannot leave its process (no
// TLS state export): it is told to go away (-8) and stays on A.
func TestHandOverTLSGoesAway(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pk := newPKI(t)
	a := startTLSServer(t, echoRouter(), pk.serverConfig(false))
	b := newHandoverServer(t, "B")
	p, _ := dialTLSRaw(t, a.Addr().String(), pk.rawConfig())
	p.greet(1024)
	p.echoOnce(`0{"x":1}`)
	rep, n := handOver(t, ctx, a, b.Server)
	if rep.GoneAway != 1 || rep.HandedOver != 0 || n != 0 {
		t.Fatalf("report %+v, adopted %d", rep, n)
	}
	if op, obj := p.read(); op != codec.OpGoAway {
		t.Fatalf("want -8, got op %d %s", op, obj)
	}
	p.echoOnce(`0{"x":2}`) // still served by A
}

// TestHandOverSuccessorFails: a successor that closes the socket after
// the first batch arrived, without acknowledging it, leaves A serving
// every connection, which A adopts back, and accepting again.
func TestHandOverSuccessorFails(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := newHandoverServer(t, "A")
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	peers := make([]*rawPeer, 5)
	for i := range peers {
		peers[i] = dialRaw(t, a.Addr().String())
		peers[i].greet(1024)
		peers[i].write(`1{"seq":1}`)
		peers[i].readNote()
	}
	ids := map[uint64]bool{}
	for _, c := range a.Conns() {
		ids[c.ID()] = true
	}
	ua, ub := engine.UnixPair(t)
	go func() {
		_, _ = ub.Write([]byte{0xff, 0xff, 0xff, 0xff}) // "reading", as Adopt says first
		b := make([]byte, 1)
		_, _ = io.ReadFull(ub, b) // the first batch's first byte, then gone
		ub.Close()
	}()
	if _, err := a.HandOver(ctx, ua); err == nil {
		t.Fatal("HandOver succeeded with a successor that died")
	}
	for i, p := range peers {
		p.write(fmt.Sprintf(`1{"seq":%d}`, 100+i))
		if n := p.readNote(); n.Seq != 100+i || n.Server != "A" {
			t.Fatalf("peer %d after the failure: %+v", i, n)
		}
	}
	if a.Len() != len(peers) {
		t.Fatalf("A has %d connections, want %d", a.Len(), len(peers))
	}
	for _, c := range a.Conns() {
		if !ids[c.ID()] {
			t.Fatalf("net id %d is new: the ids did not survive", c.ID())
		}
		if c.Value() != fmt.Sprintf("value of %d", c.ID()) {
			t.Fatalf("value %v", c.Value())
		}
	}
	if got := a.Group("room").Len(); got != len(peers) {
		t.Fatalf("the room has %d members", got)
	}
	q := dialRaw(t, a.Addr().String())
	q.greet(1024) // A accepts again
	if a.disconnects.get() != 0 {
		t.Fatalf("%d disconnect callbacks", a.disconnects.get())
	}
}

// TestHandOverBeforeAuth: a connection that has not authenticated yet
// moves too, and authenticates with the successor, which then admits it.
func TestHandOverBeforeAuth(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	auth := engine.WithAuth(func(context.Context, handler.Conn, []byte) (string, error) { return "late", nil }, testTimeout)
	a := newHandoverServer(t, "A", auth)
	b := newHandoverServer(t, "B", auth)
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, a.Addr().String())
	p.greet(1024)
	for deadline := time.Now().Add(testTimeout); a.Len() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no connection on A")
		}
	}
	if rep, n := handOver(t, ctx, a.Server, b.Server); rep.HandedOver != 1 || n != 1 {
		t.Fatalf("report %+v, adopted %d", rep, n)
	}
	if len(b.ConnsOf("late")) != 0 || len(b.Conns()) != 0 {
		t.Fatal("B admitted a connection that has not authenticated")
	}
	p.write(`-9{"user":"late"}`)
	if op, obj := p.read(); op != codec.OpAuth || !strings.Contains(string(obj), `"late"`) {
		t.Fatalf("auth answer from B: op %d %s", op, obj)
	}
	p.write(`2{"seq":1}`)
	if n := p.readNote(); n.Server != "B" {
		t.Fatalf("echo: %+v", n)
	}
	if b.connects.get() != 1 {
		t.Fatalf("B ran %d connect callbacks, want 1: the connection is admitted there", b.connects.get())
	}
}

// TestHandOverMany hands over more connections than a batch (253) and a
// loop's window of hand-offs at once: every one moves, and answers on B.
func TestHandOverMany(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := newHandoverServer(t, "A", engine.WithEventLoops(2))
	b := newHandoverServer(t, "B", engine.WithEventLoops(2))
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	const n = 600
	peers := make([]*rawPeer, n)
	for i := range peers {
		peers[i] = dialRaw(t, a.Addr().String())
		peers[i].greet(1024)
	}
	for deadline := time.Now().Add(testTimeout); a.Len() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections on A", a.Len(), n)
		}
	}
	t0 := time.Now()
	rep, got := handOver(t, ctx, a.Server, b.Server)
	t.Logf("handed over %d in %v", n, time.Since(t0))
	if rep.HandedOver != n || got != n {
		t.Fatalf("report %+v, adopted %d", rep, got)
	}
	for i, p := range peers {
		p.write(fmt.Sprintf(`2{"seq":%d}`, i))
		if got := p.readNote(); got.Seq != i || got.Server != "B" {
			t.Fatalf("peer %d: %+v", i, got)
		}
	}
	if a.Len() != 0 || b.Len() != n {
		t.Fatalf("A has %d connections, B %d", a.Len(), b.Len())
	}
}

// TestHandOverNoSuccessor: a successor that never says it is reading
// leaves every connection untouched: HandOver ends with its context, and
// the server serves and accepts as before.
func TestHandOverNoSuccessor(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	a := newHandoverServer(t, "A")
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, a.Addr().String())
	p.greet(1024)
	p.write(`2{"seq":1}`)
	p.readNote()
	ua, _ := engine.UnixPair(t)
	hctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := a.HandOver(hctx, ua); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HandOver: %v, want the context's deadline", err)
	}
	p.write(`2{"seq":2}`)
	if n := p.readNote(); n.Seq != 2 || n.Server != "A" {
		t.Fatalf("after: %+v", n)
	}
	q := dialRaw(t, a.Addr().String())
	q.greet(1024)
}

// TestHandOverSuccessorStopsReading: a successor that says hello and then
// reads nothing leaves HandOver blocked in a write no longer than its
// context: HandOver returns the context's error and the connection is
// served here again.
func TestHandOverSuccessorStopsReading(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	big := bytes.Repeat([]byte("x"), 4<<20) // more than the socket holds
	a := newHandoverServer(t, "A", engine.WithHandover(func(handler.Conn) ([]byte, error) { return big, nil }, nil))
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p := dialRaw(t, a.Addr().String())
	p.greet(1024)
	p.write(`2{"seq":1}`)
	p.readNote()
	ua, ub := engine.UnixPair(t)
	if err := handoverwire.WriteAck(ub, handoverwire.Hello); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := a.HandOver(hctx, ua)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("HandOver: %v, want the context's deadline", err)
		}
	case <-ctx.Done():
		t.Fatal("HandOver still writes to a successor that does not read, its context long over")
	}
	p.write(`2{"seq":2}`)
	if n := p.readNote(); n.Seq != 2 || n.Server != "A" {
		t.Fatalf("after: %+v", n)
	}
}
