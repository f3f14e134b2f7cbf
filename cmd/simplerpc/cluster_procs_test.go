package main

// This file tests a cluster of four serve processes: three nodes, n1 to
// n3, on the NATS server that a fourth, "nats", embeds (serve --cluster
// embedded: the CLI's own way to run NATS, so no other program is
// needed): broadcast and relay across processes, a node killed, the NATS
// process killed and restarted on its port.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/handler"
)

func TestServeClusterProcesses(t *testing.T) {
	t.Parallel()
	ctx := ctxWithin(t, 4*testWait)
	token := filepath.Join(t.TempDir(), "token") // made by the first NATS process, read by the others
	natsArgs := func(url string) []string {
		return []string{"--cluster", url, "--node", "nats", "--quiet", "--cluster-token-file", token}
	}
	bus, wb := startNode(t, natsArgs("embedded")...)
	url := wb.wait(t, 0, reLine(`msg="embedded NATS listening" url=(\S+)`))[1]
	port := url[strings.LastIndex(url, ":")+1:]

	names := []string{"n1", "n2", "n3"}
	nodes := make([]*node, len(names))
	nums := map[string]int{"nats": wb.number(t)}
	for i, name := range names {
		nodes[i], _ = startNode(t, "--cluster", url, "--node", name, "--cluster-token-file", token)
		nums[name] = nodes[i].w.number(t)
	}
	// Each node knows the three others.
	for i, n := range nodes {
		for other, num := range nums {
			if other != names[i] {
				n.w.wait(t, 0, nodeUpRE(num))
			}
		}
	}

	// Two clients on each node.
	clients := make([][]*demoClient, len(nodes))
	var all []*demoClient
	for i, n := range nodes {
		for range 2 {
			c := dialDemo(t, ctx, n.addr)
			if c.node != names[i] {
				t.Fatalf("client of %s says node %q", names[i], c.node)
			}
			clients[i] = append(clients[i], c)
			all = append(all, c)
		}
	}
	a1, a2, b1, b2, c1, c2 := clients[0][0], clients[0][1], clients[1][0], clients[1][1], clients[2][0], clients[2][1]

	// Broadcast from n1 reaches every connection of every node.
	seq := func(s any) string { return jsonText(map[string]any{"seq": s}) }
	if err := a1.SendRaw(opBroadcast, []byte(seq(1))); err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		c.wantFrame(t, ctx, opBroadcast, seq(1))
	}
	// Relays across processes, both ways, and within one.
	a1.relay(t, c1.id, `{"from":"a1"}`)
	c2.relay(t, b1.id, `{"from":"c2"}`)
	b1.relay(t, b2.id, `{"from":"b1"}`)
	c1.wantFrame(t, ctx, opRelay, `{"from":"a1"}`)
	b1.wantFrame(t, ctx, opRelay, `{"from":"c2"}`)
	b2.wantFrame(t, ctx, opRelay, `{"from":"b1"}`)

	// Groups with members on every node: opcodes 4 and 5, the server's
	// plain API in the handler (engine.ServerOf(c).Group(name)).
	checkGroups(t, ctx, "cluster", []*demoClient{a1, b1, c1}, []*demoClient{c2, a2})

	// A connection gone on another node: UnknownConn, its node being up.
	from := nodes[1].w.mark()
	_ = b2.Close()
	nodes[1].w.wait(t, from, reLine(`msg=disconnect conn=`+strconv.FormatUint(b2.id, 10)))
	a1.relay(t, b2.id, `{}`)
	a1.wantFailure(t, ctx, reasonUnknownConn, "is not connected")

	// n3 killed: relays to its connections fail with UnknownConn at once
	// (NATS has no responder for its subject), and the others take it for
	// down within the heartbeat timeout.
	marks := []int{nodes[0].w.mark(), nodes[1].w.mark()}
	killed := time.Now()
	if err := nodes[2].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nodes[2].wait(t, testWait)
	a1.relay(t, c1.id, `{"after":"kill"}`)
	took := a1.wantFailure(t, ctx, reasonUnknownConn, "its node is down")
	t.Logf("a relay to the killed node failed after %v", took.Round(time.Millisecond))
	for i := range 2 {
		nodes[i].w.wait(t, marks[i], reLine(`msg="simplerpc cluster: node down" .*peer=`+strconv.Itoa(nums["n3"])+` .*reason="cluster: heartbeat timeout`))
	}
	t.Logf("the killed node was taken for down by both others after %v (heartbeat timeout 3s + interval 1s)", time.Since(killed).Round(time.Millisecond))
	b1.relay(t, c2.id, `{}`)
	b1.wantFailure(t, ctx, reasonUnknownConn, "its node is down")

	// The NATS process killed: local traffic goes on; a broadcast reaches
	// only its own node, and its sender hears why.
	marks = []int{nodes[0].w.mark(), nodes[1].w.mark()}
	if err := bus.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	bus.wait(t, testWait)
	for i := range 2 {
		nodes[i].w.wait(t, marks[i], reLine(`msg="simplerpc cluster: NATS connection lost"`))
	}
	if err := a1.SendRaw(opBroadcast, []byte(seq("outage"))); err != nil {
		t.Fatal(err)
	}
	// The receipt of a1's first relay to c1 may have died with n3 (the
	// frame arrived; n3 was killed before its answer left): that relay
	// then fails late, when n1 takes n3 for down. Nothing else may come
	// before the broadcast's failure.
	lostReceipt := func(f handler.Error) bool {
		return f.Reason == reasonUnknownConn && f.Message == "net id "+strconv.FormatUint(c1.id, 10)+" is not connected: its node is down"
	}
	a1.wantFailureSkip(t, ctx, lostReceipt, reasonRelayFailed, "NATS is unreachable")
	a2.wantFrame(t, ctx, opBroadcast, seq("outage"))
	a1.relay(t, a2.id, `{"during":"outage"}`)
	a2.wantFrame(t, ctx, opRelay, `{"during":"outage"}`)

	// Restarted on its port: the nodes reconnect and find each other again.
	bus, wb = startNode(t, natsArgs("embedded:"+port)...)
	if got := wb.wait(t, 0, reLine(`msg="embedded NATS listening" url=(\S+)`))[1]; got != url {
		t.Fatalf("NATS restarted at %s, want %s", got, url)
	}
	for i := range 2 {
		nodes[i].w.wait(t, marks[i], reLine(`msg="simplerpc cluster: NATS connected"`))
	}
	// Until n1 reaches n2 again. A relay may fail for a moment: until n2's
	// subscriptions are back on the new NATS server (NATS answers "no
	// responders"), or, if the outage outlasted the heartbeat timeout,
	// until each has heard the other again. Each try fails or arrives;
	// a failed one is tried again at the next tick.
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for try := 0; ; try++ {
		failed := a1.skipFailures()
		probe := fmt.Sprintf(`{"probe":%d}`, try)
		a1.relay(t, b1.id, probe)
		arrived := false
		a1.until(t, ctx, "relay outcome", func() bool {
			b1.mu.Lock()
			arrived = b1.count(opRelay, probe) > 0
			b1.mu.Unlock()
			return arrived || len(a1.failures) > failed
		}, b1)
		if arrived {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("n1 never reached n2 again: %v", ctx.Err())
		}
	}
	a1.skipFailures()
	if err := a1.SendRaw(opBroadcast, []byte(seq(2))); err != nil {
		t.Fatal(err)
	}
	if err := b1.SendRaw(opBroadcast, []byte(seq(3))); err != nil {
		t.Fatal(err)
	}
	live := []*demoClient{a1, a2, b1}
	for _, c := range live {
		c.wantFrame(t, ctx, opBroadcast, seq(2))
		c.wantFrame(t, ctx, opBroadcast, seq(3))
	}
	// Markers from both nodes to each live client come after anything
	// either node sent it before: order is kept per origin node.
	for _, c := range live {
		a1.relay(t, c.id, `{"marker":"n1"}`)
		b1.relay(t, c.id, `{"marker":"n2"}`)
		c.wantFrame(t, ctx, opRelay, `{"marker":"n1"}`)
		c.wantFrame(t, ctx, opRelay, `{"marker":"n2"}`)
	}

	// Nothing was delivered twice, and the broadcast made during the
	// outage never reached the other node.
	for _, c := range live {
		for f, n := range c.frameCounts() {
			if n != 1 {
				t.Errorf("client %d of %s got %d %s %d times", c.id, c.node, f.op, f.data, n)
			}
		}
	}
	b1.mu.Lock()
	if n := b1.count(opBroadcast, seq("outage")); n != 0 {
		t.Errorf("the broadcast made while NATS was down reached n2 %d times", n)
	}
	b1.mu.Unlock()

	for _, n := range append(nodes[:2], bus) {
		n.stop(t)
	}
}

// nodeUpRE matches the line of a node seeing node number num up.
func nodeUpRE(num int) *regexp.Regexp {
	return reLine(`msg="simplerpc cluster: node up" .*peer=` + strconv.Itoa(num) + ` `)
}
