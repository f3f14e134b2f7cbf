//go:build unix

// This file reads the process's CPU time for the benchmarks' cpu-ns/op.

package engine_test

import "syscall"

// processCPU returns the CPU time (user and system) the process has used,
// in nanoseconds, or -1 where it cannot be read.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
