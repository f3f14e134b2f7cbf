package cluster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The benchmarks send and call by net id to a client of node 2, from node 2
// itself (local: the engine alone), from node 1 through the embedded NATS
// server in-process (remote), and from node 1 with both nodes connected to
// that server by TCP, as nodes in other processes are (remote-tcp).
//
// BenchmarkSendByID and BenchmarkCallByID wait for each operation's outcome
// (the client's receipt of the frame, or the reply) before the next, so
// ns/op is the latency of one operation, and p50/p99 are reported beside
// it. The Window benchmarks keep 64 operations in flight and report the
// throughput. BenchmarkCallByIDPaced makes 1,000 calls a second, one at
// a time, and reports their latency. Allocations count the whole process: the nodes, NATS and
// the client, all in this process on every core. Run one at a time
// (docs/CLUSTER.md, "Figures"):
//
//	go test -c -o cluster.test ./cluster/
//	flock /work/bench.lock ./cluster.test -test.run '^$' -test.bench . -test.benchtime 5000x
func BenchmarkSendByID(b *testing.B) {
	for _, where := range benchWheres {
		b.Run(where, func(b *testing.B) {
			from, dst := benchPair(b, where)
			msg := seqMsg{Seq: 1}
			ctx := ctxFor(b, time.Minute)
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := from.Send(dst.id, 1, msg); err != nil {
					b.Fatal(err)
				}
				dst.next(b, ctx)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			percentiles(b, lat)
		})
	}
}

func BenchmarkCallByID(b *testing.B) { benchCalls(b, 0) }

// BenchmarkCallByIDPaced is BenchmarkCallByID at 1,000 calls a second.
func BenchmarkCallByIDPaced(b *testing.B) { benchCalls(b, time.Millisecond) }

// benchCalls makes calls one at a time, one every interval (back to back
// if 0), and reports their latency.
func benchCalls(b *testing.B, every time.Duration) {
	for _, where := range benchWheres {
		b.Run(where, func(b *testing.B) {
			from, dst := benchPair(b, where)
			ctx := ctxFor(b, time.Minute+time.Duration(b.N)*every)
			req := addReq{A: 1, B: 2}
			var resp addResp
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			begin := time.Now()
			for i := range b.N {
				if every > 0 {
					time.Sleep(time.Until(begin.Add(time.Duration(i) * every))) // the pace itself
				}
				start := time.Now()
				if err := from.Call(ctx, dst.id, opAdd, req, &resp); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			percentiles(b, lat)
		})
	}
}

// benchWindow is the number of operations the Window benchmarks keep in
// flight.
const benchWindow = 64

func BenchmarkSendByIDWindow(b *testing.B) {
	for _, where := range benchWheres {
		b.Run(where, func(b *testing.B) {
			from, dst := benchPair(b, where)
			ctx := ctxFor(b, time.Minute)
			msg := seqMsg{Seq: 1}
			window(b, "sends/s", func() error { return from.Send(dst.id, 1, msg) }, func() { dst.next(b, ctx) })
		})
	}
}

func BenchmarkCallByIDWindow(b *testing.B) {
	for _, where := range benchWheres {
		b.Run(where, func(b *testing.B) {
			from, dst := benchPair(b, where)
			ctx := ctxFor(b, time.Minute)
			req := addReq{A: 1, B: 2}
			done := make(chan error, benchWindow)
			issue := func() error {
				var resp addResp // each call its own: CallAsync writes it before done
				return from.CallAsync(ctx, dst.id, opAdd, req, &resp, func(err error) { done <- err })
			}
			window(b, "calls/s", issue, func() {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// window makes b.N operations with issue, keeping benchWindow in flight,
// waiting for each outcome with wait, and reports the throughput as unit.
func window(b *testing.B, unit string, issue func() error, wait func()) {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent, got := 0, 0
	for got < b.N {
		for sent < b.N && sent-got < benchWindow {
			if err := issue(); err != nil {
				b.Fatal(err)
			}
			sent++
		}
		wait()
		got++
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}

var benchWheres = []string{"local", "remote", "remote-tcp"}

// benchPair returns the node to send from and the client to send to.
func benchPair(b *testing.B, where string) (*node, *client) {
	var nodes []*node
	if where == "remote-tcp" {
		ns := startNATS(b)
		for num := 1; num <= 2; num++ {
			nc, err := nats.Connect(ns.URL(), nats.Token(ns.Token()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(nc.Close)
			nodes = append(nodes, startNode(b, nc, num))
		}
		formed(b, ctxFor(b, 10*time.Second), nodes...)
	} else {
		_, nodes = newCluster(b, 2)
	}
	dst := dial(b, nodes[1])
	if where == "local" {
		return nodes[1], dst
	}
	return nodes[0], dst
}

func percentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}
