package engine_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// BenchmarkEchoOneConn measures opcode-0 round trips on one connection,
// one frame in flight, over plain TCP and over TLS (TLS 1.3,
// AES-128-GCM or ChaCha20 as crypto/tls picks for the CPU), with the same
// server. The peer is a plain net.Conn or a crypto/tls client in this
// process; allocations count both sides. Compare with:
// benchstat -col /transport.
func BenchmarkEchoOneConn(b *testing.B) {
	p := newPKI(b)
	for _, size := range []int{256, 4096} {
		for _, transport := range []string{"plain", "tls"} {
			b.Run("size="+strconv.Itoa(size)+"/transport="+transport, func(b *testing.B) {
				r := handler.NewRouter()
				r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
				opts := []engine.ServerOption{engine.WithMessageSize(size)}
				if transport == "tls" {
					opts = append(opts, engine.WithTLS(p.serverConfig(false)))
				}
				srv, err := engine.NewServer(r, opts...)
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				defer srv.Close()
				nc, err := net.Dial("tcp", srv.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				c := nc
				if transport == "tls" {
					tc := tls.Client(nc, p.rawConfig())
					if err := tc.Handshake(); err != nil {
						b.Fatal(err)
					}
					c = tc
				}
				defer c.Close()
				buf := make([]byte, size)
				if _, err := io.ReadFull(c, buf); err != nil { // the -2 frame
					b.Fatal(err)
				}
				frame, _ := codec.Append(nil, size, 0, map[string]any{"some_data": 123, "pad": "0123456789abcdef0123456789abcdef"})
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := c.Write(frame); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
