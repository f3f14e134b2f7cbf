// Package rlimit raises the file-descriptor limit.
package rlimit

import "syscall"

// RaiseNoFile sets the soft RLIMIT_NOFILE to the hard limit and returns the
// soft limit in force afterwards.
func RaiseNoFile() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}
