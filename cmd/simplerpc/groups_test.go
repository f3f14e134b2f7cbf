package main

// This file tests serve's group opcodes, 4 and 5, on a lone server and
// (from TestServeClusterProcesses) across serve --cluster processes: the
// same checks, the same handler code.

import (
	"context"
	"fmt"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// TestServeGroupsAlone checks opcodes 4 and 5 on a server without
// --cluster.
func TestServeGroupsAlone(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--node", "solo")
	ctx := ctxWithin(t, testWait)
	var clients []*demoClient
	for range 4 {
		clients = append(clients, dialDemo(t, ctx, addr))
	}
	checkGroups(t, ctx, "alone", clients[:3], clients[3:])
	// Bad frames: the typed failures of the router.
	a := clients[0]
	for _, tc := range []struct {
		op          codec.Opcode
		obj, reason string
	}{
		{opJoin, `{}`, handler.ReasonArgumentMissing},
		{opJoin, `{"group": ""}`, handler.ReasonArgumentValueError},
		{opGroupSend, `{"group": "room"}`, handler.ReasonArgumentMissing},
		{opGroupSend, `{"group": "room", "data": [1]}`, handler.ReasonArgumentTypeError},
	} {
		if err := a.SendRaw(tc.op, []byte(tc.obj)); err != nil {
			t.Fatal(err)
		}
		a.wantFailure(t, ctx, tc.reason, "")
	}
}

// join makes c join group with opcode 4, and waits until it has: the
// server handles a connection's frames in order, so once its call on
// opcode 3 is answered, the join is done.
func (c *demoClient) join(t *testing.T, ctx context.Context, group string) {
	t.Helper()
	if err := c.SendRaw(opJoin, []byte(jsonText(map[string]string{"group": group}))); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, opWhoami, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// groupSend sends data to group's members with opcode 5.
func (c *demoClient) groupSend(t *testing.T, group, data string) {
	t.Helper()
	if err := c.SendRaw(opGroupSend, []byte(fmt.Sprintf(`{"group":%q,"data":%s}`, group, data))); err != nil {
		t.Fatal(err)
	}
}

// checkGroups has members join a group named after tag, then an outsider
// and a member send to it with opcode 5: every member gets both frames on
// opcode 5, the member that sent included, and no outsider gets either
// (a relay from each sender, which comes after anything that sender's
// node sent before, arrives first).
func checkGroups(t *testing.T, ctx context.Context, tag string, members, outsiders []*demoClient) {
	t.Helper()
	group := "room-" + tag
	for _, m := range members {
		m.join(t, ctx, group)
	}
	from := []*demoClient{outsiders[0], members[0]}
	for i, s := range from {
		s.groupSend(t, group, fmt.Sprintf(`{"%s":%d}`, tag, i))
	}
	for _, m := range members {
		for i := range from {
			m.wantFrame(t, ctx, opGroupSend, fmt.Sprintf(`{"%s":%d}`, tag, i))
		}
	}
	for _, o := range outsiders {
		for _, s := range from {
			marker := fmt.Sprintf(`{"marker":"%s-%d"}`, tag, s.id)
			s.relay(t, o.id, marker)
			o.wantFrame(t, ctx, opRelay, marker)
		}
		o.mu.Lock()
		for i := range from {
			if n := o.count(opGroupSend, fmt.Sprintf(`{"%s":%d}`, tag, i)); n != 0 {
				t.Errorf("outsider %d of %s got a send to %s", o.id, o.node, group)
			}
		}
		o.mu.Unlock()
	}
}
