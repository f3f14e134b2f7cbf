// This file is the chat server's logic: names, rooms and messages, as
// handlers on one engine.Server that browsers (WebSocket) and Go clients
// (TCP) share.

package main

import (
	"slices"
	"sync"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// chat is the state of the chat: who has which name and is in which
// rooms. The rooms themselves are the server's groups (engine.Group), so a
// message to a room is one Group.Send. Its handlers run on the event loops;
// they never block (sends are queued), so holding mu across one is fine.
type chat struct {
	srv *engine.Server
	p   *printer

	mu    sync.Mutex        // guards names and users
	names map[string]uint64 // name -> net id
	users map[uint64]*user  // net id -> user, for connections that said hello
}

// user is a named connection and the rooms it joined.
type user struct {
	name  string
	rooms map[string]bool
}

// newChat returns the chat's server: its handlers on a router, with the
// given options (the WebSocket origins) added to the chat's own.
func newChat(p *printer, opts ...engine.ServerOption) (*chat, error) {
	c := &chat{p: p, names: map[string]uint64{}, users: map[uint64]*user{}}
	r := handler.NewRouter()
	handler.HandleCall(r, opHello, c.hello)
	handler.HandleCall(r, opJoin, c.join)
	handler.HandleCall(r, opLeave, c.leave)
	handler.HandleCall(r, opSay, c.say)
	handler.HandleCall(r, opMembers, c.members)
	handler.HandleCall(r, opOnline, func(handler.Conn, empty) (onlineMsg, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return onlineMsg{c.online()}, nil
	})
	opts = append([]engine.ServerOption{
		engine.WithMessageSize(frameSize),
		engine.WithOnConnect(func(conn handler.Conn) {
			p.printf("server: net id %d connected from %s\n", conn.ID(), conn.RemoteAddr())
		}),
		engine.WithOnDisconnect(c.gone),
	}, opts...)
	srv, err := engine.NewServer(r, opts...)
	if err != nil {
		return nil, err
	}
	c.srv = srv
	return c, nil
}

func (c *chat) hello(conn handler.Conn, req helloReq) (helloResp, error) {
	name, err := checkName(req.Name)
	if err != nil {
		return helloResp{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.users[conn.ID()]; u != nil {
		return helloResp{}, failure(reasonAlreadyNamed, "you are %s already", u.name)
	}
	if _, taken := c.names[name]; taken {
		return helloResp{}, failure(reasonNameTaken, "the name %s is taken", name)
	}
	c.names[name] = conn.ID()
	c.users[conn.ID()] = &user{name: name, rooms: map[string]bool{}}
	c.p.printf("server: net id %d is %s\n", conn.ID(), name)
	online := c.online()
	_ = c.srv.SendAll(opPresence, onlineMsg{online})
	return helloResp{Name: name, Online: online}, nil
}

func (c *chat) join(conn handler.Conn, req roomReq) (membersResp, error) {
	room, err := checkRoom(req.Room)
	if err != nil {
		return membersResp{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u, err := c.user(conn)
	if err != nil {
		return membersResp{}, err
	}
	g := c.srv.Group(room)
	if !u.rooms[room] {
		if err := g.Join(conn.ID()); err != nil {
			return membersResp{}, err // the connection is closing: an internal failure
		}
		u.rooms[room] = true
		c.p.printf("server: %s joined %s\n", u.name, room)
		_ = g.Send(opJoined, presenceMsg{Room: room, Name: u.name, Members: c.membersOf(g)})
	}
	return membersResp{Room: room, Members: c.membersOf(g)}, nil
}

func (c *chat) leave(conn handler.Conn, req roomReq) (empty, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, room, err := c.member(conn, req.Room)
	if err != nil {
		return empty{}, err
	}
	g := c.srv.Group(room)
	g.Leave(conn.ID())
	delete(u.rooms, room)
	c.p.printf("server: %s left %s\n", u.name, room)
	_ = g.Send(opLeft, presenceMsg{Room: room, Name: u.name, Members: c.membersOf(g)})
	return empty{}, nil
}

func (c *chat) say(conn handler.Conn, req sayReq) (empty, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, room, err := c.member(conn, req.Room)
	if err != nil {
		return empty{}, err
	}
	text, err := checkText(req.Text)
	if err != nil {
		return empty{}, err
	}
	c.p.printf("server: [%s] %s: %s\n", room, u.name, text)
	// The limits keep the frame under frameSize; a room whose member is too
	// slow is the engine's business (its slow-consumer policy).
	msg := messageMsg{Room: room, From: u.name, Text: text, At: time.Now().UnixMilli()}
	return empty{}, c.srv.Group(room).Send(opMessage, msg)
}

func (c *chat) members(conn handler.Conn, req roomReq) (membersResp, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, room, err := c.member(conn, req.Room)
	if err != nil {
		return membersResp{}, err
	}
	return membersResp{Room: room, Members: c.membersOf(c.srv.Group(room))}, nil
}

// gone forgets a closed connection: its name is free again, its rooms
// and everyone online hear that it left.
func (c *chat) gone(conn handler.Conn, reason error) {
	c.p.printf("server: net id %d disconnected (%v)\n", conn.ID(), reason)
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.users[conn.ID()]
	if u == nil {
		return
	}
	delete(c.users, conn.ID())
	delete(c.names, u.name)
	for room := range u.rooms {
		g := c.srv.Group(room)
		g.Leave(conn.ID()) // the engine has done so already; this makes it certain
		_ = g.Send(opLeft, presenceMsg{Room: room, Name: u.name, Members: c.membersOf(g)})
	}
	_ = c.srv.SendAll(opPresence, onlineMsg{c.online()})
}

// user returns conn's user, or the NoName failure. Called with mu held.
func (c *chat) user(conn handler.Conn) (*user, error) {
	u := c.users[conn.ID()]
	if u == nil {
		return nil, failure(reasonNoName, "say hello with a name first")
	}
	return u, nil
}

// member returns conn's user and the room, checked, or the failure saying
// why conn is not a member of it. Called with mu held.
func (c *chat) member(conn handler.Conn, room string) (*user, string, error) {
	room, err := checkRoom(room)
	if err != nil {
		return nil, "", err
	}
	u, err := c.user(conn)
	if err != nil {
		return nil, "", err
	}
	if !u.rooms[room] {
		return nil, "", failure(reasonNotInRoom, "you have not joined %s", room)
	}
	return u, room, nil
}

// membersOf returns the names of g's members, sorted. Called with mu held.
func (c *chat) membersOf(g engine.Group) []string {
	names := []string{}
	for _, m := range g.Members() {
		if u := c.users[m.ID()]; u != nil {
			names = append(names, u.name)
		}
	}
	slices.Sort(names)
	return names
}

// online returns the names online, sorted. Called with mu held.
func (c *chat) online() []string {
	names := make([]string, 0, len(c.names))
	for name := range c.names {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
