//go:build unix

// This file benchmarks the engine's own work per echoed frame over the
// fake wire of traffic_internal_test.go: no system call, no peer.

package engine

import (
	"syscall"
	"testing"
)

// BenchmarkTrafficEcho is the engine's own work for a read of 16 echoed
// frames, per frame: decode, count, dispatch, SendRaw, the reply built and
// handed to the wire, with no system call.
func BenchmarkTrafficEcho(b *testing.B) {
	const size, k = 256, 16
	c, w := echoOnFake(b, size)
	frames := echoFrames(b, size, k)
	b.ReportAllocs()
	b.SetBytes(k * size)
	n, written := 0, w.written
	cpu := processCPU()
	for b.Loop() {
		w.in = frames
		c.traffic()
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*k), "ns/frame")
	// The CPU time as well: on a shared machine the wall time also counts
	// the waits for a core.
	b.ReportMetric(float64(processCPU()-cpu)/float64(n*k), "cpu-ns/frame")
	if w.written-written != n*k*size || len(w.in) != 0 {
		b.Fatalf("%d bytes written for %d reads of %d frames, %d left", w.written-written, n, k, len(w.in))
	}
}

// processCPU returns the CPU time the process has used, in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
