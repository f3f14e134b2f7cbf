package cluster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/cluster"
)

// The benchmarks send and call by net id to a client of node 2, from node 2
// itself (local: the engine alone) and from node 1 (remote: through the
// embedded NATS server, in-process). Each operation waits for its outcome
// (the client's receipt of the frame, or the reply), so ns/op is the
// latency of one operation, and p50/p99 are reported beside it. Allocations
// count the whole process: the nodes, NATS and the client. Run pinned:
//
//	taskset -c 1 go test -run '^$' -bench . -benchtime 2000x ./cluster/
func BenchmarkSendByID(b *testing.B) {
	for _, where := range []string{"local", "remote"} {
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

func BenchmarkCallByID(b *testing.B) {
	for _, where := range []string{"local", "remote"} {
		b.Run(where, func(b *testing.B) {
			from, dst := benchPair(b, where)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			req := addReq{A: 1, B: 2}
			var resp addResp
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
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

// benchPair returns the node to send from and the client to send to.
func benchPair(b *testing.B, where string) (*cluster.Node, *client) {
	_, nodes := newCluster(b, 2)
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
