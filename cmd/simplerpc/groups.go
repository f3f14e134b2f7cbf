package main

// This file holds serve's group opcodes, 4 (join) and 5 (send to a
// group's members), written with the server's plain API: the same handler
// code serves a lone server and, with --cluster, every node, whose
// backend makes a group's sends reach its members on every node.

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Opcodes of the demo server's groups.
const (
	opJoin      = 4 // {"group": NAME}: the sender joins NAME
	opGroupSend = 5 // {"group": NAME, "data": {...}}: data goes to NAME's members on opcode 5
)

// maxGroupName bounds a group's name, in bytes.
const maxGroupName = 128

// joinMsg is an opcode-4 frame.
type joinMsg struct {
	Group string `json:"group" simplerpc:"required"`
}

// Validate checks the group's name.
func (m joinMsg) Validate() error { return checkGroupName(m.Group) }

// groupSendMsg is an opcode-5 frame.
type groupSendMsg struct {
	Group string          `json:"group" simplerpc:"required"`
	Data  json.RawMessage `json:"data" simplerpc:"required"`
}

// Validate checks the group's name, and that data is an object.
func (m groupSendMsg) Validate() error {
	if err := checkGroupName(m.Group); err != nil {
		return err
	}
	if _, err := codec.Object(m.Data); err != nil {
		return handler.ArgumentTypeError(`"data" must be a JSON object`)
	}
	return nil
}

// checkGroupName accepts 1 to maxGroupName bytes of UTF-8.
func checkGroupName(name string) error {
	if name == "" || len(name) > maxGroupName || !utf8.ValidString(name) {
		return handler.ArgumentValueError(`"group" must be 1 to 128 bytes of UTF-8`)
	}
	return nil
}

// addGroupOps registers opcodes 4 and 5 on r. A join lasts until the
// connection closes. A send reaches every member, the sender too if it
// joined; a failure (the cluster could not carry it to the other nodes)
// is answered with a failure frame, the local members having it already.
func addGroupOps(r *handler.Router) {
	handler.Handle(r, opJoin, func(c handler.Conn, m joinMsg) error {
		return engine.ServerOf(c).Group(m.Group).Join(c.ID())
	})
	handler.Handle(r, opGroupSend, func(c handler.Conn, m groupSendMsg) error {
		// Send encodes the borrowed m.Data before it returns.
		if err := engine.ServerOf(c).Group(m.Group).Send(opGroupSend, m.Data); err != nil {
			return relayFailure(0, err)
		}
		return nil
	})
}
