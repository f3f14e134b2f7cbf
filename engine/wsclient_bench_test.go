package engine_test

import (
	"context"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// BenchmarkEchoClientTransports measures opcode-0 round trips of our
// client against our server, one frame in flight, over TCP, ws:// and
// wss:// (TLS 1.3 as crypto/tls picks), frames of 256 bytes; allocations
// count both sides. Compare with: benchstat -col /transport.
func BenchmarkEchoClientTransports(b *testing.B) {
	p := newPKI(b)
	for _, transport := range []string{"tcp", "ws", "wss"} {
		b.Run("transport="+transport, func(b *testing.B) {
			r := handler.NewRouter()
			r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
			sopts := []engine.ServerOption{engine.WithMessageSize(256)}
			var copts []engine.ClientOption
			addr := "127.0.0.1:0"
			switch transport {
			case "ws":
				addr = "ws://127.0.0.1:0/rpc"
			case "wss":
				addr = "wss://127.0.0.1:0/rpc"
				sopts = append(sopts, engine.WithTLS(p.serverConfig(false)))
				copts = append(copts, engine.WithTLS(p.clientConfig(false)))
			}
			srv, err := engine.NewServer(r, sopts...)
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(context.Background(), addr); err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			dial := srv.Addr().String()
			if transport != "tcp" {
				dial = transport + "://" + dial + "/rpc"
			}
			echoed := make(chan struct{}, 1)
			cr := handler.NewRouter()
			cr.On(0, func(handler.Conn, []byte) error { echoed <- struct{}{}; return nil })
			cl, err := engine.Dial(context.Background(), dial, cr, copts...)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { cl.Close(); <-cl.Done() }()
			<-cl.Ready()
			obj := []byte(`{"some_data":123,"pad":"0123456789abcdef0123456789abcdef"}`)
			b.SetBytes(256)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := cl.SendRaw(codec.Opcode(0), obj); err != nil {
					b.Fatal(err)
				}
				<-echoed
			}
		})
	}
}
