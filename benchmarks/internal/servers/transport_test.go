package servers

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	bdial "github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// TestEchoOverTransports: the TLS and WebSocket servers send the -2 frame
// first, then echo three frames sent at once, in order and unchanged.
func TestEchoOverTransports(t *testing.T) {
	frame, err := wire.EchoFrame(wire.DefaultSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, impl := range []string{"simplerpc-tls", "nettls", "simplerpc-ws", "netws"} {
		t.Run(impl, func(t *testing.T) {
			s := start(t, impl)
			v := bdial.Via{}
			switch TransportOf(impl) {
			case TLS:
				v.TLS = ClientTLS()
			case WebSocket:
				v.WSPath = wire.WSPath
			default:
				t.Fatalf("TransportOf(%q) is plain TCP", impl)
			}
			c, err := bdial.OneVia(&net.Dialer{Timeout: 10 * time.Second}, s.Addr(), wire.SizeFrame(wire.DefaultSize), v)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var batch, want []byte
			var codec wslayer.Codec
			key := [4]byte{1, 2, 3, 4}
			for i := range 3 {
				f := bytes.Clone(frame)
				wire.PutDigits(f[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(1000+i))
				want = append(want, f...)
				if v.WSPath != "" {
					batch = codec.AppendFrame(batch, ws.OpText, f, true, key)
				} else {
					batch = append(batch, f...)
				}
			}
			if _, err := c.Write(batch); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 0, len(want))
			if v.WSPath != "" {
				r := bufio.NewReader(c)
				for range 3 {
					h, p, err := wslayer.ReadFrame(r)
					if err != nil {
						t.Fatal(err)
					}
					if h.OpCode != ws.OpText || !h.Fin {
						t.Fatalf("a frame of opcode %d", h.OpCode)
					}
					got = append(got, p...)
				}
			} else {
				got = got[:len(want)]
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("echo differs:\n got %.80q\nwant %.80q", got, want)
			}
		})
	}
}
