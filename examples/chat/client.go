// This file runs the client role: a Go client over TCP that takes a name,
// joins a room, sends the lines it reads and prints what the rooms say.

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// talk runs the client role until ctx ends, in ends or /quit: each line
// of in is a message to the current room or a command.
func talk(ctx context.Context, p *printer, in io.Reader, addr, name, room string) error {
	cl, err := dialChat(ctx, p, addr, strings.TrimSpace(name))
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while connecting
		}
		return err
	}
	defer func() {
		_ = cl.Close()
		<-cl.Done()
	}()
	var hello helloResp
	if err := cl.Call(ctx, opHello, helloReq{Name: name}, &hello); err != nil {
		return stopped(ctx, fmt.Errorf("hello as %s: %w", name, err))
	}
	s := &session{ctx: ctx, cl: cl, p: p}
	if err := s.command("/join " + room); err != nil {
		return stopped(ctx, err)
	}
	p.printf("client: you are %s; type a message for %s, or /join ROOM, /leave ROOM, /members, /online, /quit\n", hello.Name, s.room)

	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		// This goroutine ends with in: at its end, or when the process exits
		// (os.Stdin cannot be interrupted).
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-cl.Done():
				return
			}
		}
		readErr <- sc.Err()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-cl.Done():
			return stopped(ctx, fmt.Errorf("connection lost: %w", cl.Err()))
		case err := <-readErr:
			return err // nil at the end of the input
		case line := <-lines:
			if strings.TrimSpace(line) == "/quit" {
				return nil
			}
			if err := s.command(line); err != nil {
				return stopped(ctx, err)
			}
		}
	}
}

// stopped returns nil for err once ctx has ended (a clean stop), and err
// otherwise.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// dialChat connects to the chat server at addr, printing what it pushes
// but the joins of self, which the join's reply reports.
func dialChat(ctx context.Context, p *printer, addr, self string) (*engine.Client, error) {
	r := handler.NewRouter()
	handler.Handle(r, opMessage, func(_ handler.Conn, m messageMsg) error {
		p.printf("[%s] %s: %s\n", m.Room, m.From, m.Text)
		return nil
	})
	handler.Handle(r, opJoined, func(_ handler.Conn, m presenceMsg) error {
		if m.Name == self {
			return nil
		}
		p.printf("* %s joined %s (members: %s)\n", m.Name, m.Room, strings.Join(m.Members, ", "))
		return nil
	})
	handler.Handle(r, opLeft, func(_ handler.Conn, m presenceMsg) error {
		p.printf("* %s left %s (members: %s)\n", m.Name, m.Room, strings.Join(m.Members, ", "))
		return nil
	})
	handler.Handle(r, opPresence, func(_ handler.Conn, m onlineMsg) error {
		p.printf("* online: %s\n", strings.Join(m.Names, ", "))
		return nil
	})
	return engine.Dial(ctx, addr, r)
}

// session is the client role's state: the room its messages go to.
type session struct {
	ctx  context.Context
	cl   *engine.Client
	p    *printer
	room string
}

// command runs one line of input. A failure the server sends back (a room
// not joined, an empty message) is printed and is not an error; a lost
// connection is.
func (s *session) command(line string) error {
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	var err error
	switch verb {
	case "/join":
		var m membersResp
		if err = s.cl.Call(s.ctx, opJoin, roomReq{Room: arg}, &m); err == nil {
			s.room = m.Room
			s.p.printf("client: in %s with %s\n", m.Room, strings.Join(m.Members, ", "))
		}
	case "/leave":
		if arg == "" {
			arg = s.room
		}
		if err = s.cl.Call(s.ctx, opLeave, roomReq{Room: arg}, nil); err == nil {
			s.p.printf("client: left %s\n", arg)
		}
	case "/members":
		var m membersResp
		if err = s.cl.Call(s.ctx, opMembers, roomReq{Room: s.room}, &m); err == nil {
			s.p.printf("client: in %s: %s\n", m.Room, strings.Join(m.Members, ", "))
		}
	case "/online":
		var m onlineMsg
		if err = s.cl.Call(s.ctx, opOnline, empty{}, &m); err == nil {
			s.p.printf("client: online: %s\n", strings.Join(m.Names, ", "))
		}
	default:
		if strings.HasPrefix(verb, "/") {
			s.p.printf("client: unknown command %s (/join ROOM, /leave [ROOM], /members, /online, /quit)\n", verb)
			return nil
		}
		err = s.cl.Call(s.ctx, opSay, sayReq{Room: s.room, Text: line}, nil)
	}
	if reason := handler.ReasonOf(err); reason != "" {
		s.p.printf("client: failure %s: %s\n", reason, handler.Failure(err).Message)
		return nil
	}
	return err
}
