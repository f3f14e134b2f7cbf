// This file tests a server's layer that leaves mid-message (Export) and
// goes on in another (Resume): the message completes there; a layer
// closing or not upgraded does not export.

package wslayer

import (
	"testing"

	"github.com/gobwas/ws"
)

func TestExportResume(t *testing.T) {
	c, s := pairUp(t, 1024)
	in := c.l.appendFrameFin(nil, ws.OpText, false, []byte("hello, "))
	if err := s.feed(&in); err != nil || len(s.msgs) != 0 {
		t.Fatalf("first fragment: %v, %d messages", err, len(s.msgs))
	}
	st, ok := s.l.Export()
	if !ok || st.Op != byte(ws.OpText) || string(st.Msg) != "hello, " {
		t.Fatalf("export: %v %+v", ok, st)
	}
	// The successor's layer, from the state alone.
	s2 := newEnd(false, 1024)
	s2.l = Resume(s.l.cfg, s2.l.env, st)
	in = c.l.appendFrameFin(nil, ws.OpContinuation, true, []byte("world"))
	if err := s2.feed(&in); err != nil || len(s2.msgs) != 1 || string(s2.msgs[0]) != "hello, world" {
		t.Fatalf("the rest: %v, messages %q", err, s2.msgs)
	}
	if _, ok := newEnd(false, 1024).l.Export(); ok {
		t.Error("a layer before its upgrade exported")
	}
	s2.l.sendClose(ws.StatusNormalClosure)
	if _, ok := s2.l.Export(); ok {
		t.Error("a layer that sent its close frame exported")
	}
	if _, ok := c.l.Export(); ok {
		t.Error("a client's layer exported")
	}
}
