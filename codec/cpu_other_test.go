//go:build !unix

// This file stands in for cpu_unix_test.go where the CPU time cannot be
// read: the benchmarks report no cpu-ns/op.

package codec

func processCPU() int64 { return -1 }
