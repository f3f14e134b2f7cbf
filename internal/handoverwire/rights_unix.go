//go:build unix

// This file holds the SCM_RIGHTS control messages that carry a batch's
// descriptors, on Unix.

package handoverwire

import "syscall"

func closeFD(fd int) { _ = syscall.Close(fd) }

// unixRights returns the SCM_RIGHTS control message that passes fds.
func unixRights(fds []int) []byte { return syscall.UnixRights(fds...) }

// rightsSpace is the room a control message of n descriptors needs.
func rightsSpace(n int) int { return syscall.CmsgSpace(4 * n) }

// truncated reports whether recvmsg's flags say control data was lost.
func truncated(flags int) bool { return flags&syscall.MSG_CTRUNC != 0 }

// parseRights returns the descriptors a control message passed, each
// closed on exec.
func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var out []int
	for i := range msgs {
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue // not SCM_RIGHTS
		}
		for _, fd := range fds {
			syscall.CloseOnExec(fd)
		}
		out = append(out, fds...)
	}
	return out, nil
}
