//go:build unix

// This file gives the tests of both packages a Unix stream socketpair.

package engine

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// UnixPair returns the two ends of a Unix stream socketpair: the way two
// servers in one process (or a process and its successor) hand over.
func UnixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	end := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "handover")
		defer f.Close()
		nc, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc.(*net.UnixConn)
	}
	return end(fds[0]), end(fds[1])
}
