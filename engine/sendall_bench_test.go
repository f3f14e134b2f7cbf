// A micro-benchmark of send-to-all: the broadcast path through the loop's
// queue and the outbound credit's check per connection.

package engine_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// BenchmarkSendAll sends b.N 256-byte frames to 100 connections with
// Server.SendAll, in rounds of 16, each round waiting until every
// connection has read it (so the output never reaches the cap). ns/op is
// the time per frame sent to all 100.
func BenchmarkSendAll(b *testing.B) {
	const size, conns, round = 256, 100, 16
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithMessageSize(size))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		// The -2 frame: the server writes it in the round that admits the
		// connection, so once it is read, sends to all reach it.
		if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	msg := map[string]any{"some_data": 123, "pad": "0123456789abcdef0123456789abcdef"}
	b.SetBytes(size * conns)
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		n := min(round, b.N-sent)
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := io.ReadFull(c, make([]byte, n*size)); err != nil {
					b.Error(err)
				}
			}()
		}
		for range n {
			if err := srv.SendAll(1, msg); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
		sent += n
	}
}
