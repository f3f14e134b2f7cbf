//go:build unix

// This file holds what a handover needs of the system on Unix: copies of
// descriptors (the control messages that carry them are
// internal/handoverwire's).

package engine

import "syscall"

// dupFD returns a copy of fd, closed on exec.
func dupFD(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	n, err := syscall.Dup(fd)
	if err != nil {
		return -1, err
	}
	syscall.CloseOnExec(n)
	return n, nil
}
