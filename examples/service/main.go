// Command service is a small chat service run as a Linux service with
// package service: rooms (the server's groups) and calls, socket
// activation, readiness and watchdog notifications, a graceful stop on
// SIGTERM, and a live upgrade on SIGHUP that moves every connection, with
// its name and rooms, to the new binary while its peer sees nothing.
//
//	go build -o /usr/local/bin/rooms ./examples/service
//	cp examples/service/rooms.socket examples/service/rooms.service /etc/systemd/system/
//	systemctl enable --now rooms.socket
//	systemctl reload rooms     # after installing a new binary: SIGHUP
//
// Without systemd it listens on -addr itself. The protocol: a call on
// opcode 1, {"name": N}, names the connection; a call on 2, {"room": R},
// joins R and answers its members; a call on 3, {"room": R, "text": T,
// "seq": S}, sends {"room": R, "from": N, "text": T} to R's members on
// opcode 4 and answers {"seq": S}.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"strings"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/service"
)

const (
	opHello = 1 // call {"name"} -> {}
	opJoin  = 2 // call {"room"} -> {"members": [names]}
	opSay   = 3 // call {"room", "text", "seq"} -> {"seq"}; the room hears it on opHeard
	opHeard = 4 // frame {"room", "from", "text"}
)

type hello struct {
	Name string `json:"name" simplerpc:"required"`
}
type join struct {
	Room string `json:"room" simplerpc:"required"`
}
type members struct {
	Members []string `json:"members"`
}
type say struct {
	Room string `json:"room" simplerpc:"required"`
	Text string `json:"text"`
	Seq  int    `json:"seq"`
}
type heard struct {
	Room string `json:"room"`
	From string `json:"from"`
	Text string `json:"text"`
}

// newServer returns the rooms server: a connection's name is its Value,
// and travels with it to a successor (engine.WithHandover).
func newServer() (*engine.Server, error) {
	var srv *engine.Server
	r := handler.NewRouter()
	handler.HandleCall(r, opHello, func(c handler.Conn, h hello) (struct{}, error) {
		c.SetValue(h.Name)
		return struct{}{}, nil
	})
	handler.HandleCall(r, opJoin, func(c handler.Conn, j join) (members, error) {
		g := srv.Group(j.Room)
		m := members{Members: []string{}}
		if err := g.Join(c.ID()); err != nil {
			return m, err
		}
		for _, mc := range g.Members() {
			m.Members = append(m.Members, nameOf(mc))
		}
		return m, nil
	})
	handler.HandleCall(r, opSay, func(c handler.Conn, s say) (say, error) {
		return say{Seq: s.Seq}, srv.Group(s.Room).Send(opHeard, heard{Room: s.Room, From: nameOf(c), Text: s.Text})
	})
	var err error
	srv, err = engine.NewServer(r, engine.WithHandover(
		func(c handler.Conn) ([]byte, error) { return []byte(nameOf(c)), nil },
		func(c handler.Conn, state []byte) error { c.SetValue(string(state)); return nil }))
	return srv, err
}

func nameOf(c handler.Conn) string {
	name, _ := c.Value().(string)
	return name
}

func main() {
	addrs := flag.String("addr", "127.0.0.1:30000", "addresses to listen on without socket activation, separated by commas")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	srv, err := newServer()
	if err == nil {
		err = service.Run(context.Background(), srv, service.WithAddrs(strings.Split(*addrs, ",")...), service.WithLogger(log))
	}
	if err != nil {
		log.Error("rooms", "err", err)
		os.Exit(1)
	}
}
