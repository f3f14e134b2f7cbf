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

// callRun is what every call slot of a run shares: the clock base, the
// phase, the counters, and a WaitGroup that is done when every slot has
// stopped.
type callRun struct {
	base        time.Time
	phase       atomic.Int32
	calls, errs atomic.Int64
	wg          sync.WaitGroup
}

// record counts one completed round trip that started at start.
func (r *callRun) record(h *hdrhistogram.Histogram, ph int32, start time.Time) {
	if ph == phaseMeasure && r.phase.Load() == phaseMeasure {
		report.Record(h, int64(time.Since(start)))
		r.calls.Add(1)
	}
}

// runCall keeps o.pipeline calls in flight on each of o.conns connections,
// with the library's own client: simplerpc's engine.Dialer (one event loop
// for all connections) with a goroutine per caller blocked in Call, the
// same with CallAsync chained from its done callback on the event loop and
// no goroutine per call (-impl simplerpc-async), or net/rpc's jsonrpc
// client (a reader goroutine per connection) with a goroutine per caller.
func runCall(o options) (*report.LoadResult, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	run := &callRun{base: time.Now()}
	var starts []func(h *hdrhistogram.Histogram)
	switch o.impl {
	case "simplerpc", "simplerpc-async":
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
			if o.impl == "simplerpc-async" {
				starts = append(starts, func(h *hdrhistogram.Histogram) { run.chain(cl, h) })
				continue
			}
			starts = append(starts, run.blocking(func(args, reply *wire.CallArgs) error {
				return cl.Call(context.Background(), wire.OpCall, args, reply)
			}))
		}
	case "netrpc":
		for range o.conns {
			nc, err := net.DialTimeout("tcp", o.addr, o.timeout)
			if err != nil {
				return nil, err
			}
			cl := jsonrpc.NewClient(nc)
			closers = append(closers, func() { _ = cl.Close() })
			starts = append(starts, run.blocking(func(args, reply *wire.CallArgs) error {
				return cl.Call(servers.NetRPCMethod, args, reply)
			}))
		}
	default:
		return nil, fmt.Errorf("-mode call needs -impl simplerpc, simplerpc-async or netrpc, not %q", o.impl)
	}

	hists := make([]*hdrhistogram.Histogram, 0, len(starts)*o.pipeline)
	for _, start := range starts {
		for range o.pipeline {
			h := report.NewHist()
			hists = append(hists, h)
			run.wg.Add(1)
			start(h)
		}
	}
	time.Sleep(o.warmup)
	w := startCPU(o.serverPID)
	run.phase.Store(phaseMeasure)
	time.Sleep(o.duration)
	run.phase.Store(phaseStop)
	res := &report.LoadResult{Mode: "call", Impl: o.impl, Conns: o.conns, Pipeline: o.pipeline}
	res.Frames = run.calls.Load()
	el := w.stop(res, res.Frames)
	run.wg.Wait()
	merged := report.NewHist()
	for _, h := range hists {
		merged.Merge(h)
	}
	res.ElapsedS = el.Seconds()
	res.FramesPerS = float64(res.Frames) / el.Seconds()
	res.Errors = run.errs.Load()
	res.Latency = report.Summarize(merged)
	if res.Frames == 0 {
		return nil, fmt.Errorf("no call completed (%d errors)", res.Errors)
	}
	return res, nil
}

// blocking returns a slot starter for a blocking caller: a goroutine that
// calls in a loop until the run stops.
func (r *callRun) blocking(call caller) func(h *hdrhistogram.Histogram) {
	return func(h *hdrhistogram.Histogram) {
		go func() {
			defer r.wg.Done()
			args := wire.NewCallArgs()
			var reply wire.CallArgs
			for {
				ph := r.phase.Load()
				if ph == phaseStop {
					return
				}
				start := time.Now()
				args.T = int64(start.Sub(r.base))
				if err := call(&args, &reply); err != nil || reply.T != args.T {
					r.errs.Add(1)
					time.Sleep(time.Millisecond)
					continue
				}
				r.record(h, ph, start)
			}
		}()
	}
}

// chain keeps one CallAsync in flight on cl: each done records the round
// trip and makes the next call, on the event loop, until the run stops.
func (r *callRun) chain(cl *engine.Client, h *hdrhistogram.Histogram) {
	args := wire.NewCallArgs()
	var reply wire.CallArgs
	var next func()
	next = func() {
		ph := r.phase.Load()
		if ph == phaseStop {
			r.wg.Done()
			return
		}
		start := time.Now()
		args.T = int64(start.Sub(r.base))
		err := cl.CallAsync(context.Background(), wire.OpCall, &args, &reply, func(err error) {
			if err != nil || reply.T != args.T {
				r.errs.Add(1)
				time.AfterFunc(time.Millisecond, next)
				return
			}
			r.record(h, ph, start)
			next()
		})
		if err != nil {
			r.errs.Add(1)
			time.AfterFunc(time.Millisecond, next)
		}
	}
	next()
}
