// This file holds the send-to-all micro-benchmark.

package engine_test

import (
	"context"
	"io"
	"sync"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// BenchmarkSendAll sends b.N 64-byte frames to all of 100 connections with
// Server.SendAllRaw from one goroutine, and waits until every peer has
// read them all: the cost of one send to all, from the call to the
// sockets (a server alone: no backend).
func BenchmarkSendAll(b *testing.B) {
	const size, conns = 64, 100
	ids := make(chan uint64, conns)
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithMessageSize(size),
		engine.WithMaxOutbound(1<<30, engine.SlowClose),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	addr := srv.Addr().String()
	obj := []byte(`{"n":1}`)
	var wg sync.WaitGroup
	b.SetBytes(size * conns)
	b.ReportAllocs()
	for range conns {
		peer := dialPeer(b, addr, size, true)
		<-ids
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.CopyN(io.Discard, peer, int64(b.N)*size); err != nil {
				b.Error(err)
			}
		}()
	}
	b.ResetTimer()
	for range b.N {
		if err := srv.SendAllRaw(3, obj); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
}
