package main

import (
	"context"
	"fmt"
	"net"
	"net/rpc/jsonrpc"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"

	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// caller makes one call and waits for its reply.
type caller func(args, reply *wire.CallArgs) error

// runCall keeps o.pipeline callers busy on each of o.conns connections,
// each calling in a loop, with the library's own client: simplerpc's
// engine.Dialer (one event loop for all connections) or net/rpc's
// jsonrpc client (a reader goroutine per connection).
func runCall(o options) (*report.LoadResult, error) {
	var callers []caller
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	switch o.impl {
	case "simplerpc":
		d, err := engine.NewDialer(handler.NewRouter(), engine.WithDialTimeout(o.timeout))
		if err != nil {
			return nil, err
		}
		closers = append(closers, func() { _ = d.Close() })
		for range o.conns {
			ctx, cancel := stopContext(o.timeout)
			cl, err := d.Dial(ctx, o.addr)
			if err == nil {
				select {
				case <-cl.Ready():
				case <-ctx.Done():
					err = ctx.Err()
				}
			}
			cancel()
			if err != nil {
				return nil, err
			}
			callers = append(callers, func(args, reply *wire.CallArgs) error {
				return cl.Call(context.Background(), wire.OpCall, args, reply)
			})
		}
	case "netrpc":
		for range o.conns {
			nc, err := net.DialTimeout("tcp", o.addr, o.timeout)
			if err != nil {
				return nil, err
			}
			cl := jsonrpc.NewClient(nc)
			closers = append(closers, func() { _ = cl.Close() })
			callers = append(callers, func(args, reply *wire.CallArgs) error {
				return cl.Call(servers.NetRPCMethod, args, reply)
			})
		}
	default:
		return nil, fmt.Errorf("-mode call needs -impl simplerpc or netrpc, not %q", o.impl)
	}

	base := time.Now()
	var phase atomic.Int32
	var calls, errs atomic.Int64
	var wg sync.WaitGroup
	hists := make([]*hdrhistogram.Histogram, 0, len(callers)*o.pipeline)
	for _, call := range callers {
		for range o.pipeline {
			h := report.NewHist()
			hists = append(hists, h)
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := wire.NewCallArgs()
				var reply wire.CallArgs
				for {
					ph := phase.Load()
					if ph == phaseStop {
						return
					}
					start := time.Now()
					args.T = int64(start.Sub(base))
					if err := call(&args, &reply); err != nil || reply.T != args.T {
						errs.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					if ph == phaseMeasure && phase.Load() == phaseMeasure {
						report.Record(h, int64(time.Since(start)))
						calls.Add(1)
					}
				}
			}()
		}
	}
	time.Sleep(o.warmup)
	w := startCPU(o.serverPID)
	phase.Store(phaseMeasure)
	time.Sleep(o.duration)
	phase.Store(phaseStop)
	res := &report.LoadResult{Mode: "call", Impl: o.impl, Conns: o.conns, Pipeline: o.pipeline}
	res.Frames = calls.Load()
	el := w.stop(res, res.Frames)
	wg.Wait()
	merged := report.NewHist()
	for _, h := range hists {
		merged.Merge(h)
	}
	res.ElapsedS = el.Seconds()
	res.FramesPerS = float64(res.Frames) / el.Seconds()
	res.Errors = errs.Load()
	res.Latency = report.Summarize(merged)
	if res.Frames == 0 {
		return nil, fmt.Errorf("no call completed (%d errors)", res.Errors)
	}
	return res, nil
}
