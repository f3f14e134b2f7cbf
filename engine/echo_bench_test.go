package engine_test

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// rawEcho is the ceiling: a gnet server that echoes whole fixed-size frames
// without parsing them, one Write per read.
type rawEcho struct {
	gnet.BuiltinEventEngine
	size int
	addr chan net.Addr
	eng  gnet.Engine
}

func (e *rawEcho) OnBoot(eng gnet.Engine) gnet.Action {
	e.eng = eng
	fd, _ := eng.Dup()
	f := os.NewFile(uintptr(fd), "l")
	ln, _ := net.FileListener(f)
	e.addr <- ln.Addr()
	ln.Close()
	f.Close()
	return gnet.None
}

func (e *rawEcho) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	f, _ := codec.AppendMessageSize(nil, e.size, e.size)
	return f, gnet.None
}

func (e *rawEcho) OnTraffic(c gnet.Conn) gnet.Action {
	n := c.InboundBuffered() / e.size * e.size
	if n == 0 {
		return gnet.None
	}
	b, _ := c.Next(n)
	_, _ = c.Write(b)
	return gnet.None
}

func startRawEcho(b *testing.B, size int) (string, func()) {
	e := &rawEcho{size: size, addr: make(chan net.Addr, 1)}
	done := make(chan struct{})
	go func() {
		_ = gnet.Run(e, "tcp://127.0.0.1:0", gnet.WithReuseAddr(true), gnet.WithLogger(quiet{}))
		close(done)
	}()
	addr := <-e.addr
	return addr.String(), func() {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-done; cancel() }()
		_ = e.eng.Stop(ctx)
		<-done
	}
}

type quiet struct{}

func (quiet) Debugf(string, ...any) {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(string, ...any) {}

// BenchmarkEcho measures opcode-0 round trips (decode, dispatch, encode,
// write) with 100 connections, each with one frame in flight, against the
// raw gnet echo of the same 256-byte frames in the same run. The load comes
// from goroutines of this process, so both servers share the machine with
// it equally. Compare with: benchstat -col /impl.
func BenchmarkEcho(b *testing.B) {
	const size, conns = 256, 100
	for _, impl := range []string{"simplerpc", "raw_gnet"} {
		b.Run("conns=100/impl="+impl, func(b *testing.B) {
			var addr string
			var stop func()
			if impl == "raw_gnet" {
				addr, stop = startRawEcho(b, size)
			} else {
				r := handler.NewRouter()
				r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
				srv, err := engine.NewServer(r, engine.WithMessageSize(size))
				if err != nil {
					b.Fatal(err)
				}
				if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				addr, stop = srv.Addr().String(), func() { srv.Close() }
			}
			defer stop()
			frame, _ := codec.Append(nil, size, 0, map[string]any{"some_data": 123, "pad": "0123456789abcdef0123456789abcdef"})
			cs := make([]net.Conn, conns)
			for i := range cs {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				buf := make([]byte, size)
				if _, err := io.ReadFull(c, buf); err != nil { // the -2 frame
					b.Fatal(err)
				}
				cs[i] = c
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), processCPU()
			var wg sync.WaitGroup
			per := b.N/conns + 1
			for _, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, size)
					for range per {
						if _, err := c.Write(frame); err != nil {
							b.Error(err)
							return
						}
						if _, err := io.ReadFull(c, buf); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*conns)/time.Since(start).Seconds(), "rtt/s")
			// The process's CPU per round trip, the load's too: what holds
			// on a shared machine, where ns/op also counts the waits for a
			// core.
			if end := processCPU(); cpu >= 0 && end >= 0 {
				b.ReportMetric(float64(end-cpu)/float64(per*conns), "cpu-ns/rtt")
			}
		})
	}
}
