//go:build unix

// This file holds the handover tests' helpers: socket pairs, servers that
// note what moves, and the handover itself between two servers.

package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// handNote is a numbered frame, echoed on opcode 3 with the server's name.
type handNote struct {
	Seq    int    `json:"seq"`
	Server string `json:"server,omitempty"`
}

// handoverServer is a server named name: opcode 1 joins the group "room"
// and echoes on 3 with the name; opcode 2 echoes with the name, and calls
// on opcode 2 answer the name. Its connect and disconnect callbacks are
// counted; the application's value is carried by WithHandover.
type handoverServer struct {
	*engine.Server
	name                  string
	connects, disconnects chanCount
}

type chanCount struct {
	mu sync.Mutex
	n  int
}

func (c *chanCount) add()     { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *chanCount) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func newHandoverServer(t *testing.T, name string, opts ...engine.ServerOption) *handoverServer {
	t.Helper()
	hs := &handoverServer{name: name}
	r := handler.NewRouter()
	handler.Handle(r, 1, func(c handler.Conn, n handNote) error {
		if err := engine.ServerOf(c).Group("room").Join(c.ID()); err != nil {
			return err
		}
		n.Server = name
		return c.Send(3, n)
	})
	handler.Handle(r, 2, func(c handler.Conn, n handNote) error {
		n.Server = name
		return c.Send(3, n)
	})
	handler.HandleCall(r, 2, func(handler.Conn, struct{}) (map[string]string, error) {
		return map[string]string{"server": name}, nil
	})
	opts = append([]engine.ServerOption{
		engine.WithOnConnect(func(c handler.Conn) {
			hs.connects.add()
			c.SetValue(fmt.Sprintf("value of %d", c.ID()))
		}),
		engine.WithOnDisconnect(func(handler.Conn, error) { hs.disconnects.add() }),
		engine.WithHandover(
			func(c handler.Conn) ([]byte, error) { return json.Marshal(c.Value()) },
			func(c handler.Conn, state []byte) error {
				if state == nil {
					return nil // a predecessor without the hook
				}
				var v string
				if err := json.Unmarshal(state, &v); err != nil {
					return err
				}
				c.SetValue(v)
				return nil
			}),
	}, opts...)
	srv, err := engine.NewServer(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	hs.Server = srv
	t.Cleanup(func() { srv.Close() })
	return hs
}

// handOver runs a.HandOver and b.Adopt over a socketpair, and returns
// the report and how many b adopted.
func handOver(t *testing.T, ctx context.Context, a, b *engine.Server) (engine.HandoverReport, int) {
	t.Helper()
	ua, ub := engine.UnixPair(t)
	type adopted struct {
		n   int
		err error
	}
	done := make(chan adopted, 1)
	go func() {
		n, err := b.Adopt(ctx, ub)
		done <- adopted{n, err}
	}()
	rep, err := a.HandOver(ctx, ua)
	if err != nil {
		t.Fatalf("HandOver: %v", err)
	}
	got := <-done
	if got.err != nil {
		t.Fatalf("Adopt: %v", got.err)
	}
	if got.n != rep.HandedOver {
		t.Fatalf("handed over %d, adopted %d", rep.HandedOver, got.n)
	}
	return rep, got.n
}

// readNote reads one opcode-3 frame of a raw peer.
func (p *rawPeer) readNote() handNote {
	p.t.Helper()
	op, obj := p.read()
	var n handNote
	if op != 3 || json.Unmarshal(obj, &n) != nil {
		p.t.Fatalf("want an opcode-3 note, got op %d %s", op, obj)
	}
	return n
}
