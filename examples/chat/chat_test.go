// This file tests the chat server with Go clients only, over TCP: names,
// rooms, members, messages, presence and every typed failure.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
)

// mainEnv makes the test binary run main instead of the tests, for the
// test that runs the example as a process.
const mainEnv = "CHAT_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		return
	}
	testkit.VerifyTestMain(m) // no goroutine left behind
}

// wait bounds every wait of these tests: generous, for a loaded machine.
const wait = 30 * time.Second

// startChat starts the server role on free loopback ports; the cleanup
// shuts it down.
func startChat(t *testing.T, out io.Writer) *server {
	t.Helper()
	lns, err := listen(t.Context(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := start(context.Background(), &printer{w: out}, lns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return s
}

// frame is one frame the server pushed to a test client.
type frame struct {
	op   codec.Opcode
	data json.RawMessage
}

// goClient is a test's Go client: it records what the server pushes.
type goClient struct {
	t      *testing.T
	cl     *engine.Client
	frames chan frame
}

// tcpOf returns the address of s's TCP listener, for Go clients.
func tcpOf(s *server) string { return s.lns.tcp.Addr().String() }

// dialTest connects a test client to the chat server at addr.
func dialTest(t *testing.T, addr string) *goClient {
	t.Helper()
	g := &goClient{t: t, frames: make(chan frame, 256)}
	r := handler.NewRouter()
	for _, op := range []codec.Opcode{opMessage, opJoined, opLeft, opPresence} {
		r.On(op, func(_ handler.Conn, data []byte) error {
			select {
			case g.frames <- frame{op, append(json.RawMessage(nil), data...)}:
			default:
				t.Errorf("test client: frame %d dropped, its channel is full", op)
			}
			return nil
		})
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	cl, err := engine.Dial(ctx, addr, r)
	if err != nil {
		t.Fatal(err)
	}
	g.cl = cl
	t.Cleanup(func() { g.close() })
	return g
}

func (g *goClient) close() {
	_ = g.cl.Close()
	<-g.cl.Done()
}

// call makes a call and returns its error.
func (g *goClient) call(op codec.Opcode, req, resp any) error {
	ctx, cancel := context.WithTimeout(g.t.Context(), wait)
	defer cancel()
	return g.cl.Call(ctx, op, req, resp)
}

// must makes a call that must succeed.
func (g *goClient) must(op codec.Opcode, req, resp any) {
	g.t.Helper()
	if err := g.call(op, req, resp); err != nil {
		g.t.Fatalf("call %d %+v: %v", op, req, err)
	}
}

// next returns the next frame on op whose data decodes into v and makes
// ok(v) true; the frames it passes over are dropped.
func next[T any](g *goClient, op codec.Opcode, ok func(T) bool) T {
	g.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case f := <-g.frames:
			var v T
			if f.op != op {
				continue
			}
			if err := json.Unmarshal(f.data, &v); err != nil {
				g.t.Fatalf("frame %d %s: %v", f.op, f.data, err)
			}
			if ok(v) {
				return v
			}
		case <-deadline:
			var zero T
			g.t.Fatalf("no frame on opcode %d within %v", op, wait)
			return zero
		}
	}
}

// hello connects a test client to addr and takes name.
func hello(t *testing.T, addr, name string) *goClient {
	t.Helper()
	g := dialTest(t, addr)
	var r helloResp
	g.must(opHello, helloReq{Name: name}, &r)
	if r.Name != strings.TrimSpace(name) || !slices.Contains(r.Online, r.Name) {
		t.Fatalf("hello %q: %+v", name, r)
	}
	return g
}

// TestRooms: two Go clients in a room see each other join, talk and
// leave; members and online say who is where.
func TestRooms(t *testing.T) {
	addr := tcpOf(startChat(t, io.Discard))
	alice := hello(t, addr, "alice")
	bob := hello(t, addr, " bob ") // trimmed to bob
	next(alice, opPresence, func(m onlineMsg) bool { return slices.Equal(m.Names, []string{"alice", "bob"}) })

	var m membersResp
	alice.must(opJoin, roomReq{Room: "lobby"}, &m)
	if m.Room != "lobby" || !slices.Equal(m.Members, []string{"alice"}) {
		t.Fatalf("alice joins lobby: %+v", m)
	}
	bob.must(opJoin, roomReq{Room: "lobby"}, &m)
	if !slices.Equal(m.Members, []string{"alice", "bob"}) {
		t.Fatalf("bob joins lobby: %+v", m)
	}
	j := next(alice, opJoined, func(p presenceMsg) bool { return p.Name == "bob" })
	if j.Room != "lobby" || !slices.Equal(j.Members, []string{"alice", "bob"}) {
		t.Errorf("alice hears bob join: %+v", j)
	}
	bob.must(opJoin, roomReq{Room: "lobby"}, &m) // again: no change, no error
	bob.must(opJoin, roomReq{Room: "kitchen"}, &m)

	before := time.Now().UnixMilli()
	bob.must(opSay, sayReq{Room: "lobby", Text: "  hi alice <3  "}, nil)
	for _, g := range []*goClient{alice, bob} {
		msg := next(g, opMessage, func(messageMsg) bool { return true })
		if msg.Room != "lobby" || msg.From != "bob" || msg.Text != "hi alice <3" || msg.At < before {
			t.Errorf("message as received: %+v", msg)
		}
	}
	alice.must(opMembers, roomReq{Room: "lobby"}, &m)
	if !slices.Equal(m.Members, []string{"alice", "bob"}) {
		t.Errorf("members of lobby: %+v", m)
	}
	var on onlineMsg
	dialTest(t, addr).must(opOnline, empty{}, &on) // no name needed
	if !slices.Equal(on.Names, []string{"alice", "bob"}) {
		t.Errorf("online: %+v", on)
	}

	// A message to kitchen reaches bob only: alice's next message is hers.
	bob.must(opSay, sayReq{Room: "kitchen", Text: "alone"}, nil)
	alice.must(opSay, sayReq{Room: "lobby", Text: "second"}, nil)
	if msg := next(alice, opMessage, func(messageMsg) bool { return true }); msg.Text != "second" {
		t.Errorf("alice got %+v, want her own second message (kitchen's is not hers)", msg)
	}

	bob.must(opLeave, roomReq{Room: "lobby"}, nil)
	l := next(alice, opLeft, func(presenceMsg) bool { return true })
	if l.Name != "bob" || l.Room != "lobby" || !slices.Equal(l.Members, []string{"alice"}) {
		t.Errorf("alice hears bob leave: %+v", l)
	}
	if err := bob.call(opSay, sayReq{Room: "lobby", Text: "still here?"}, nil); handler.ReasonOf(err) != reasonNotInRoom {
		t.Errorf("bob says in lobby after leaving: %v, want %s", err, reasonNotInRoom)
	}
}

// TestDisconnect: a client that goes away frees its name, and its rooms
// and everyone online hear it.
func TestDisconnect(t *testing.T) {
	addr := tcpOf(startChat(t, io.Discard))
	alice := hello(t, addr, "alice")
	bob := hello(t, addr, "bob")
	alice.must(opJoin, roomReq{Room: "lobby"}, nil)
	bob.must(opJoin, roomReq{Room: "lobby"}, nil)
	bob.close()
	l := next(alice, opLeft, func(presenceMsg) bool { return true })
	if l.Name != "bob" || !slices.Equal(l.Members, []string{"alice"}) {
		t.Errorf("alice hears bob leave: %+v", l)
	}
	next(alice, opPresence, func(m onlineMsg) bool { return slices.Equal(m.Names, []string{"alice"}) })
	hello(t, addr, "bob") // the name is free again
}

// TestFailures: every refusal comes back as the typed failure the page
// shows, and the connection goes on.
func TestFailures(t *testing.T) {
	addr := tcpOf(startChat(t, io.Discard))
	alice := hello(t, addr, "alice")
	alice.must(opJoin, roomReq{Room: "lobby"}, nil)
	anon := dialTest(t, addr)
	long := strings.Repeat("r", maxRoom+1)
	for _, tc := range []struct {
		name   string
		g      *goClient
		op     codec.Opcode
		req    any
		reason string
	}{
		{"name taken", anon, opHello, helloReq{Name: "alice"}, reasonNameTaken},
		{"empty name", anon, opHello, helloReq{Name: "  "}, reasonBadName},
		{"name with a space", anon, opHello, helloReq{Name: "a b"}, reasonBadName},
		{"name too long", anon, opHello, helloReq{Name: strings.Repeat("n", maxName+1)}, reasonBadName},
		{"no name", anon, opHello, map[string]string{}, handler.ReasonArgumentMissing},
		{"hello twice", alice, opHello, helloReq{Name: "alicia"}, reasonAlreadyNamed},
		{"join before hello", anon, opJoin, roomReq{Room: "lobby"}, reasonNoName},
		{"room name too long", alice, opJoin, roomReq{Room: long}, reasonRoomNameTooLong},
		{"empty room name", alice, opJoin, roomReq{Room: ""}, reasonBadRoom},
		{"room name with a tab", alice, opJoin, roomReq{Room: "a\tb"}, reasonBadRoom},
		{"say in a room not joined", alice, opSay, sayReq{Room: "kitchen", Text: "hi"}, reasonNotInRoom},
		{"say in a room too long", alice, opSay, sayReq{Room: long, Text: "hi"}, reasonRoomNameTooLong},
		{"empty message", alice, opSay, sayReq{Room: "lobby", Text: " \t "}, reasonEmptyMessage},
		{"message too long", alice, opSay, sayReq{Room: "lobby", Text: strings.Repeat("x", maxText+1)}, reasonMessageTooLong},
		{"control character", alice, opSay, sayReq{Room: "lobby", Text: "bell\a"}, reasonBadMessage},
		{"leave a room not joined", alice, opLeave, roomReq{Room: "kitchen"}, reasonNotInRoom},
		{"members of a room not joined", alice, opMembers, roomReq{Room: "kitchen"}, reasonNotInRoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.g.call(tc.op, tc.req, nil)
			if got := handler.ReasonOf(err); got != tc.reason {
				t.Fatalf("%v: reason %q, want %q", err, got, tc.reason)
			}
			var f *handler.Error
			if tc.reason != handler.ReasonArgumentMissing && (!errors.As(err, &f) || f.Message == "") {
				t.Errorf("%v: not a *handler.Error with a message", err)
			}
		})
	}
	// The largest message the limits allow, escaped at its worst, fits the
	// frame: it reaches the room.
	worst := strings.Repeat("<", maxText)
	alice.must(opSay, sayReq{Room: "lobby", Text: worst}, nil)
	if msg := next(alice, opMessage, func(messageMsg) bool { return true }); msg.Text != worst {
		t.Errorf("the largest message arrived as %d bytes", len(msg.Text))
	}
}

// TestPageOrigins: the WebSocket endpoint allows the page's own origin,
// under the names a browser may use for it, and no other: the Origin
// hosts are matched as the engine matches them (path.Match).
func TestPageOrigins(t *testing.T) {
	for _, tc := range []struct {
		addr      string
		allow, no []string
	}{
		{"127.0.0.1:8080", []string{"127.0.0.1:8080", "localhost:8080"}, []string{"127.0.0.1:8081", "evil.example:8080"}},
		{"[::1]:8080", []string{"[::1]:8080", "localhost:8080"}, []string{"[::2]:8080", ":8080"}},
		{"0.0.0.0:8080", []string{"chat.example:8080", "10.0.0.7:8080"}, []string{"chat.example:8081"}},
		{"[::]:9000", []string{"[fe80::1]:9000"}, []string{"chat.example"}},
	} {
		tcp, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		patterns := pageOrigins(tcp)
		matches := func(host string) bool {
			for _, p := range patterns {
				if ok, err := path.Match(p, host); err != nil {
					t.Fatalf("pattern %q: %v", p, err)
				} else if ok {
					return true
				}
			}
			return false
		}
		for _, host := range tc.allow {
			if !matches(host) {
				t.Errorf("page on %s: origin %s refused by %q", tc.addr, host, patterns)
			}
		}
		for _, host := range tc.no {
			if matches(host) {
				t.Errorf("page on %s: origin %s allowed by %q", tc.addr, host, patterns)
			}
		}
	}
}
