// This file is the chat's protocol, in one place: its opcodes, the JSON
// shapes they carry, the reasons of its failures and its limits. README.md
// documents the same table for the page's side (static/chat.js).

package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Calls from a client to the server: each is answered with a reply (-4)
// or a typed failure (-5) whose reason is one of the Reason constants.
const (
	opHello   codec.Opcode = 10 // helloReq -> helloResp: take a name
	opJoin    codec.Opcode = 11 // roomReq -> membersResp: join a room
	opLeave   codec.Opcode = 12 // roomReq -> {}: leave a room
	opSay     codec.Opcode = 13 // sayReq -> {}: send a message to a room
	opMembers codec.Opcode = 14 // roomReq -> membersResp: who is in a room
	opOnline  codec.Opcode = 15 // {} -> onlineMsg: who is online
)

// Frames from the server to clients, never answered.
const (
	opMessage  codec.Opcode = 20 // messageMsg: to the room's members, its sender included
	opJoined   codec.Opcode = 21 // presenceMsg: to the room's members, the one who joined included
	opLeft     codec.Opcode = 22 // presenceMsg: to the room's remaining members
	opPresence codec.Opcode = 23 // onlineMsg: to every connection when a name comes or goes
)

// Reasons of the chat's failures, beside the library's own
// (ArgumentMissing when a required field is absent, for one).
const (
	reasonNameTaken       = "NameTaken"       // another connection has the name
	reasonBadName         = "BadName"         // empty, too long, or with control characters or spaces
	reasonNoName          = "NoName"          // a call before hello
	reasonAlreadyNamed    = "AlreadyNamed"    // a second hello
	reasonBadRoom         = "BadRoom"         // an empty room name, or one with control characters or spaces
	reasonRoomNameTooLong = "RoomNameTooLong" // a room name over maxRoom bytes
	reasonNotInRoom       = "NotInRoom"       // say, leave or members for a room not joined
	reasonEmptyMessage    = "EmptyMessage"    // a message of only white space
	reasonMessageTooLong  = "MessageTooLong"  // a message over maxText bytes
	reasonBadMessage      = "BadMessage"      // a message with control characters
)

// Limits. A message frame (opMessage) carries a room name, a name and a
// text, each of which JSON may escape to 6 bytes a byte (\u003c for <):
// frameSize bounds what the limits allow with room to spare.
const (
	maxName   = 24   // bytes of a name
	maxRoom   = 32   // bytes of a room name
	maxText   = 500  // bytes of a message
	frameSize = 4096 // the server's frame size (engine.WithMessageSize)
)

// helloReq takes a name for the connection: opHello's argument.
type helloReq struct {
	Name string `json:"name" simplerpc:"required"`
}

// helloResp is opHello's reply: the name as the server keeps it (white
// space trimmed) and who is online.
type helloResp struct {
	Name   string   `json:"name"`
	Online []string `json:"online"`
}

// roomReq names a room: the argument of opJoin, opLeave and opMembers.
type roomReq struct {
	Room string `json:"room" simplerpc:"required"`
}

// membersResp lists a room's members by name, sorted: the reply of opJoin
// and opMembers.
type membersResp struct {
	Room    string   `json:"room"`
	Members []string `json:"members"`
}

// sayReq is a message to a room: opSay's argument.
type sayReq struct {
	Room string `json:"room" simplerpc:"required"`
	Text string `json:"text" simplerpc:"required"`
}

// messageMsg is a message as the room's members get it (opMessage): at is
// the server's clock in Unix milliseconds.
type messageMsg struct {
	Room string `json:"room"`
	From string `json:"from"`
	Text string `json:"text"`
	At   int64  `json:"at"`
}

// presenceMsg says who joined or left a room (opJoined, opLeft), with the
// room's members after the change.
type presenceMsg struct {
	Room    string   `json:"room"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

// onlineMsg lists the names online, sorted: opOnline's reply and the
// opPresence frame.
type onlineMsg struct {
	Names []string `json:"names"`
}

// empty is the reply of calls that return nothing.
type empty struct{}

// failure returns the typed failure for reason, which the peer reads back
// as the -5 frame's reason and message.
func failure(reason, format string, args ...any) error {
	return &handler.Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// checkName returns name trimmed, or the failure saying why it is refused.
func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return "", failure(reasonBadName, "a name cannot be empty")
	case len(name) > maxName:
		return "", failure(reasonBadName, "a name has at most %d bytes; %q has %d", maxName, name, len(name))
	case !printable(name):
		return "", failure(reasonBadName, "a name has no spaces or control characters")
	}
	return name, nil
}

// checkRoom returns room trimmed, or the failure saying why it is refused.
func checkRoom(room string) (string, error) {
	room = strings.TrimSpace(room)
	switch {
	case room == "":
		return "", failure(reasonBadRoom, "a room name cannot be empty")
	case len(room) > maxRoom:
		return "", failure(reasonRoomNameTooLong, "a room name has at most %d bytes; this one has %d", maxRoom, len(room))
	case !printable(room):
		return "", failure(reasonBadRoom, "a room name has no spaces or control characters")
	}
	return room, nil
}

// checkText returns text trimmed, or the failure saying why it is refused.
func checkText(text string) (string, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return "", failure(reasonEmptyMessage, "a message cannot be empty")
	case len(text) > maxText:
		return "", failure(reasonMessageTooLong, "a message has at most %d bytes; this one has %d", maxText, len(text))
	case !utf8.ValidString(text) || strings.ContainsFunc(text, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }):
		return "", failure(reasonBadMessage, "a message has no control characters but tabs")
	}
	return text, nil
}

// printable reports whether s is valid UTF-8 with no space or control
// character.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	})
}
