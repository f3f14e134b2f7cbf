// This file holds the send-to-all micro-benchmark.

package engine_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// BenchmarkSendAll sends b.N 64-byte frames to all of 100 connections with
// Server.SendAllRaw from one goroutine, and waits until every peer has
// read them all: the cost of one send to all, from the call to the
// sockets (a server alone: no backend). transport=tcp has raw TCP peers,
// transport=ws ws:// ones (each frame a WebSocket message of its own).
// The sender outpaces the loop, so this is the loop behind a broadcaster:
// the sends queued in a row go to each connection in one write.
func BenchmarkSendAll(b *testing.B) {
	for _, tr := range []string{"tcp", "ws"} {
		b.Run("transport="+tr, func(b *testing.B) { benchSendAll(b, tr == "ws") })
	}
}

func benchSendAll(b *testing.B, ws bool) {
	const size, conns = 64, 100
	ids := make(chan uint64, conns)
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithMessageSize(size),
		engine.WithMaxOutbound(1<<30, engine.SlowClose),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	if ws {
		ln = engine.WebSocketListener(ln, "/rpc")
	}
	if err := srv.StartOn(context.Background(), ln); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	obj := []byte(`{"n":1}`)
	wire := int64(size)
	if ws {
		wire += 2 // a server's header: 2 bytes below 126
	}
	var wg sync.WaitGroup
	b.SetBytes(size * conns)
	b.ReportAllocs()
	for range conns {
		var peer io.Reader
		if ws {
			peer = dialWSPeer(b, addr, size)
		} else {
			peer = dialPeer(b, addr, size, true)
		}
		<-ids
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.CopyN(io.Discard, peer, int64(b.N)*wire); err != nil {
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

// dialWSPeer dials addr, upgrades to WebSocket at /rpc and reads the
// server's first frame (the -2 at size): what is left is the frames.
func dialWSPeer(b *testing.B, addr string, size int) io.Reader {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if resp, err := http.ReadResponse(r, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %v %v", resp, err)
	}
	if _, err := r.Discard(2 + size); err != nil {
		b.Fatal(err)
	}
	return r
}
