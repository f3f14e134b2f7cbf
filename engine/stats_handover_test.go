//go:build unix

package engine_test

// This file holds the statistics of a handover (handovers pass sockets
// over a Unix socket: Unix only).

import (
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestStatsHandedOver: connections a handover moves count on the old
// server as handed over, not as errors; the successor's counters go on
// from the predecessor's, with the adopted connections accepted again, so
// that Accepted less the disconnects is still what is open.
func TestStatsHandedOver(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const n = 20
	opened := make(chan struct{}, n)
	a := newHandoverServer(t, "A", engine.WithOnConnect(func(handler.Conn) { opened <- struct{}{} }))
	b := newHandoverServer(t, "B")
	if err := a.Start(ctx, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	peers := make([]*rawPeer, n)
	for i := range peers {
		peers[i] = dialRaw(t, a.Addr().String())
		peers[i].greet(1024)
	}
	for range n {
		select {
		case <-opened:
		case <-ctx.Done():
			t.Fatal("the peers did not all open")
		}
	}
	if rep, got := handOver(t, ctx, a.Server, b.Server); rep.HandedOver != n || got != n {
		t.Fatalf("report %+v, adopted %d", rep, got)
	}
	sa := a.Stats()
	if sa.Disconnects[engine.DisconnectHandedOver] != n || sa.Disconnects[engine.DisconnectError] != 0 || sa.Accepted != n {
		t.Errorf("A: accepted %d, disconnects %v; want %d accepted, %d handed over, no error", sa.Accepted, sa.Disconnects, n, n)
	}
	sb := b.Stats()
	if sb.Disconnects[engine.DisconnectHandedOver] != n || sb.Disconnects[engine.DisconnectError] != 0 ||
		sb.Accepted != 2*n || sb.Conns != n {
		t.Errorf("B: accepted %d, open %d, disconnects %v; want %d accepted (A's and the adopted), %d open, A's %d handed over",
			sb.Accepted, sb.Conns, sb.Disconnects, 2*n, n, n)
	}
	var closed uint64
	for _, v := range sb.Disconnects {
		closed += v
	}
	if sb.Accepted-closed != uint64(sb.Conns) {
		t.Errorf("B: accepted %d less closed %d is not the %d open", sb.Accepted, closed, sb.Conns)
	}
	if sb.FramesOut < sa.FramesOut || sb.Opcodes == nil {
		t.Errorf("B's frames out %d do not go on from A's %d (opcodes %v)", sb.FramesOut, sa.FramesOut, sb.Opcodes)
	}
}
