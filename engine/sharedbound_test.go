// Tests of the bound on sends to all and to groups that wait for an event
// loop (sharedbound.go).

package engine_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestSendAllBoundedWhileLoopBusy holds the only event loop in a callback
// and sends to all from the test's goroutine until a send is refused: the
// sends queued for the loop are bounded by the outbound cap, a refused
// send reaches no one, and once the loop runs again every accepted send
// arrives, in order, and the room is back.
func TestSendAllBoundedWhileLoopBusy(t *testing.T) {
	const capBytes = 64 << 10
	entered, release := make(chan struct{}), make(chan struct{})
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		if op == 9 {
			entered <- struct{}{}
			<-release // holds the loop: nothing queued for it is taken
		}
		return nil
	})
	srv := startServer(t, r, engine.WithEventLoops(1), engine.WithMaxOutbound(capBytes, engine.SlowClose))
	p := dialRaw(t, srv.Addr().String())
	p.greet(codec.DefaultMessageSize)
	p.write(`9{}`)
	<-entered

	type msg struct {
		N int `json:"n"`
	}
	accepted := 0
	var refused error
	for i := 0; i < 10*capBytes/256 && refused == nil; i++ {
		if err := srv.SendAll(1, msg{N: i}); err != nil {
			refused = err
		} else {
			accepted++
		}
	}
	if !errors.Is(refused, engine.ErrOutboundFull) {
		close(release)
		t.Fatalf("after %d sends to all with the loop held: %v, want ErrOutboundFull", accepted, refused)
	}
	// Each send holds its object and a fixed overhead on the loop; the
	// cap lets through what fits, no more.
	obj, _ := json.Marshal(msg{N: accepted})
	if most := capBytes / (len(obj) - 1 + 256); accepted < most/2 || accepted > most+1 {
		close(release)
		t.Fatalf("%d sends accepted with a cap of %d bytes, want about %d", accepted, capBytes, most)
	}
	if err := srv.Group("g").Send(1, msg{N: -1}); !errors.Is(err, engine.ErrOutboundFull) {
		t.Errorf("group send with the loop full: %v, want ErrOutboundFull", err)
	}
	close(release)

	for i := 0; i < accepted; i++ {
		op, got := p.read()
		var m msg
		if op != 1 || json.Unmarshal(got, &m) != nil || m.N != i {
			t.Fatalf("frame %d: op %d %s, want opcode 1 {\"n\":%d}", i, op, got, i)
		}
	}
	// The loop took them all: there is room again, and the refused send
	// reached no one (the next frame is the new one).
	if err := srv.SendAll(1, msg{N: 1 << 20}); err != nil {
		t.Fatalf("send to all once the loop ran: %v", err)
	}
	if op, got := p.read(); op != 1 || string(got) != `{"n":1048576}` {
		t.Fatalf("after the refusal: op %d %s", op, got)
	}
}
