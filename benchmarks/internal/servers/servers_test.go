package servers

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/rpc/jsonrpc"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

var framed = []string{"simplerpc", "rawgnet", "netnaive", "netcareful"}

func start(t *testing.T, impl string) Server {
	t.Helper()
	s, err := Start(impl, "127.0.0.1:0", Config{Size: wire.DefaultSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// dial connects and checks that the first frame is the -2 frame.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, wire.DefaultSize)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if want := wire.SizeFrame(wire.DefaultSize); !bytes.Equal(got, want) {
		t.Fatalf("first frame %.40q, want %.40q", got, want)
	}
	return c
}

func TestEcho(t *testing.T) {
	frame, err := wire.EchoFrame(wire.DefaultSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, impl := range framed {
		t.Run(impl, func(t *testing.T) {
			s := start(t, impl)
			c := dial(t, s.Addr())
			// Three frames in one write, each with its own time, come back
			// in order and unchanged.
			var batch []byte
			for i := range 3 {
				f := bytes.Clone(frame)
				wire.PutDigits(f[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(1000+i))
				batch = append(batch, f...)
			}
			if _, err := c.Write(batch); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(batch))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, batch) {
				t.Fatalf("echo differs:\n got %.80q\nwant %.80q", got, batch)
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	frame, err := wire.BroadcastFrame(wire.DefaultSize)
	if err != nil {
		t.Fatal(err)
	}
	wire.PutDigits(frame[wire.RoundOff:wire.RoundOff+wire.RoundLen], 7)
	for _, impl := range framed {
		t.Run(impl, func(t *testing.T) {
			s := start(t, impl)
			conns := make([]net.Conn, 5)
			for i := range conns {
				conns[i] = dial(t, s.Addr())
			}
			// Every server registers a connection before it writes the
			// -2 frame that dial has read: all five are registered now.
			if _, err := conns[2].Write(frame); err != nil {
				t.Fatal(err)
			}
			for i, c := range conns {
				got := make([]byte, len(frame))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("conn %d: %v", i, err)
				}
				if !bytes.Equal(got, frame) {
					t.Fatalf("conn %d got %.60q", i, got)
				}
			}
		})
	}
}

func TestCallSimpleRPC(t *testing.T) {
	s := start(t, "simplerpc")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := engine.Dial(ctx, s.Addr(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	args := wire.NewCallArgs()
	args.T = 42
	var reply wire.CallArgs
	if err := cl.Call(ctx, wire.OpCall, &args, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.T != 42 || reply.User != args.User || len(reply.Tags) != 3 || reply.Pos.Y != -3.25 {
		t.Fatalf("reply %+v", reply)
	}
}

func TestCallNetRPC(t *testing.T) {
	s := start(t, "netrpc")
	c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := jsonrpc.NewClient(c)
	defer cl.Close()
	args := wire.NewCallArgs()
	args.T = 42
	var reply wire.CallArgs
	if err := cl.Call(NetRPCMethod, &args, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.T != 42 || reply.User != args.User || reply.Note != args.Note {
		t.Fatalf("reply %+v", reply)
	}
}

func TestStartUnknown(t *testing.T) {
	if _, err := Start("nope", "127.0.0.1:0", Config{Size: 256}); err == nil {
		t.Fatal("Start accepted an unknown implementation")
	}
	if Frames("netrpc") || !Frames("rawgnet") || Frames("nope") {
		t.Fatal("Frames is wrong")
	}
}
