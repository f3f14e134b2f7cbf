package engine_test

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// asyncPush is a gnet server that hands its one connection to the
// benchmark, which writes to it with one AsyncWrite per frame: the
// approach the engine's per-loop queue replaces (GNET.md §3).
type asyncPush struct {
	gnet.BuiltinEventEngine
	conns chan gnet.Conn
	eng   gnet.Engine
	boot  chan struct{}
}

func (a *asyncPush) OnBoot(eng gnet.Engine) gnet.Action { a.eng = eng; close(a.boot); return gnet.None }
func (a *asyncPush) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	a.conns <- c
	return nil, gnet.None
}

// BenchmarkPushFromGoroutine sends b.N 64-byte frames to one connection
// from a goroutine that is not the event loop, and waits until the peer
// has read them all: impl=engine_queue is Server.Send (queued to the loop,
// one Execute per burst, one Write per drain); impl=gnet_asyncwrite is one
// gnet AsyncWrite per pre-built frame. Compare with benchstat -col /impl.
func BenchmarkPushFromGoroutine(b *testing.B) {
	const size = 64
	frame, _ := codec.Append(nil, size, 3, map[string]int{"n": 1})
	for _, impl := range []string{"engine_queue", "gnet_asyncwrite"} {
		b.Run("impl="+impl, func(b *testing.B) {
			var addr string
			var send func() error
			switch impl {
			case "engine_queue":
				ids := make(chan uint64, 1)
				srv, err := engine.NewServer(handler.NewRouter(), engine.WithMessageSize(size),
					engine.WithMaxOutbound(1<<30, engine.SlowClose),
					engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				addr = srv.Addr().String()
				defer srv.Close()
				peer := dialPeer(b, addr, size, true)
				c, _ := srv.Conn(<-ids)
				send = func() error { return c.SendRaw(3, []byte(`{"n":1}`)) }
				run(b, peer, size, send)
			case "gnet_asyncwrite":
				a := &asyncPush{conns: make(chan gnet.Conn, 1), boot: make(chan struct{})}
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				addr = ln.Addr().String()
				ln.Close()
				done := make(chan struct{})
				go func() {
					_ = gnet.Run(a, "tcp://"+addr, gnet.WithReuseAddr(true), gnet.WithLogger(quiet{}))
					close(done)
				}()
				<-a.boot
				defer func() {
					ctx, cancel := context.WithCancel(context.Background())
					go func() { <-done; cancel() }()
					_ = a.eng.Stop(ctx)
					<-done
				}()
				peer := dialPeer(b, addr, size, false)
				c := <-a.conns
				send = func() error { return c.AsyncWrite(frame, nil) }
				run(b, peer, size, send)
			}
		})
	}
}

func dialPeer(b *testing.B, addr string, size int, greeting bool) net.Conn {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if greeting {
		buf := make([]byte, size)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// run pushes b.N frames and waits until the peer has read them all.
func run(b *testing.B, peer net.Conn, size int, send func() error) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	read := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, peer, int64(b.N)*int64(size))
		read <- err
	}()
	for range b.N {
		if err := send(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-read; err != nil {
		b.Fatal(err)
	}
}
