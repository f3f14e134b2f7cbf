//go:build unix

package main

import "syscall"

// fdLimit returns the process's RLIMIT_NOFILE, soft and hard (0, 0 if it
// cannot be read). The Go runtime raises the soft limit to the hard one at
// start-up.
func fdLimit() (soft, hard uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0
	}
	return uint64(rl.Cur), uint64(rl.Max) // int64 on FreeBSD, uint64 elsewhere
}
