package engine_test

import (
	"context"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// BenchArgs and BenchReply are the request and reply of BenchmarkCall, the
// same for every implementation. They are exported because net/rpc
// registers only exported types.
type BenchArgs struct {
	N int    `json:"n"`
	S string `json:"s"`
}

// BenchReply is the reply of BenchmarkCall.
type BenchReply struct {
	N int    `json:"n"`
	S string `json:"s"`
}

// BenchService is the net/rpc service of BenchmarkCall.
type BenchService struct{}

// Echo answers N+1 and S.
func (BenchService) Echo(args *BenchArgs, reply *BenchReply) error {
	reply.N, reply.S = args.N+1, args.S
	return nil
}

const benchOp = 1

// caller makes one call and checks its reply. Each caller owns one
// connection and is used by one goroutine.
type caller func(n int) error

// callImpl starts a server and conns connected callers; everything is
// stopped when the benchmark ends.
type callImpl struct {
	name  string
	start func(b *testing.B, conns int) []caller
}

var callImpls = []callImpl{
	{"simplerpc", startSimpleRPC},
	{"netrpc_jsonrpc", startNetRPC},
}

func checkReply(n int, r *BenchReply) error {
	if r.N != n+1 || r.S != "knight" {
		return fmt.Errorf("reply %+v to call %d", *r, n)
	}
	return nil
}

// startSimpleRPC serves benchOp with a typed call handler on one event
// loop, and dials conns clients on one Dialer (one event loop), all with
// the default options (1024-byte frames).
func startSimpleRPC(b *testing.B, conns int) []caller {
	r := handler.NewRouter()
	handler.HandleCall(r, benchOp, func(_ handler.Conn, a BenchArgs) (BenchReply, error) {
		return BenchReply{N: a.N + 1, S: a.S}, nil
	})
	srv, err := engine.NewServer(r)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	d, err := engine.NewDialer(handler.NewRouter())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	callers := make([]caller, conns)
	for i := range callers {
		cl, err := d.Dial(ctx, srv.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-cl.Ready():
		case <-ctx.Done():
			b.Fatal("client not ready")
		}
		callers[i] = func(n int) error {
			var reply BenchReply
			if err := cl.Call(context.Background(), benchOp, BenchArgs{N: n, S: "knight"}, &reply); err != nil {
				return err
			}
			return checkReply(n, &reply)
		}
	}
	return callers
}

// startNetRPC serves BenchService with net/rpc and its JSON-RPC 1.0 codec,
// one goroutine per connection as net/rpc does, and dials conns clients.
func startNetRPC(b *testing.B, conns int) []caller {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Bench", BenchService{}); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeCodec(jsonrpc.NewServerCodec(c))
			}()
		}
	}()
	clients := make([]*rpc.Client, 0, conns)
	b.Cleanup(func() {
		for _, c := range clients {
			_ = c.Close()
		}
		_ = ln.Close()
		wg.Wait()
	})
	callers := make([]caller, conns)
	for i := range callers {
		c, err := jsonrpc.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, c)
		callers[i] = func(n int) error {
			var reply BenchReply
			if err := c.Call("Bench.Echo", &BenchArgs{N: n, S: "knight"}, &reply); err != nil {
				return err
			}
			return checkReply(n, &reply)
		}
	}
	return callers
}

// BenchmarkCall measures calls with replies over loopback TCP, simplerpc
// against net/rpc with its JSON codec, with 1 and 100 connections. Each
// connection has one goroutine making calls back to back, so conns=100
// keeps 100 calls in flight. ns/op is wall time per call over all
// connections (calls/s is its inverse); p50-µs and p99-µs are the
// latencies of single calls. Server and clients share the process, its
// CPUs and its allocation counters: B/op and allocs/op are both sides'.
// No SetBytes: the implementations move different bytes per call (fixed
// 1024-byte frames against JSON lines), so only calls compare.
func BenchmarkCall(b *testing.B) {
	for _, conns := range []int{1, 100} {
		for _, impl := range callImpls {
			b.Run(fmt.Sprintf("conns=%d/impl=%s", conns, impl.name), func(b *testing.B) {
				runCalls(b, impl.start(b, conns))
			})
		}
	}
}

// runCalls shares b.N calls among the callers, one goroutine each, and
// reports throughput and latency percentiles.
func runCalls(b *testing.B, callers []caller) {
	// Warm up every connection (and the server's per-connection state).
	for i, call := range callers {
		if err := call(-i); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, len(callers))
	for i := range lat {
		lat[i] = make([]time.Duration, 0, b.N/len(callers)+1)
	}
	var (
		next   atomic.Int64
		failed atomic.Pointer[error]
		wg     sync.WaitGroup
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i, call := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := call(int(n)); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
