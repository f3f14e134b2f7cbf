//go:build unix

package engine

import "syscall"

// defaultMaxConns keeps 512 descriptors spare below the process limit:
// gnet's engine stops if accept fails with EMFILE (gnet issue #367).
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<24 {
		return 1 << 20
	}
	n := int(rl.Cur) - 512
	if n < 1 {
		n = 1
	}
	return n
}
