//go:build unix

package codec

// This file runs the string kernels on buffers that end at the end of a
// mapped page, the next page unreadable: a kernel that reads past its
// slice faults.

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStringRunPageEnd runs the edge cases of TestStringRunMatchesGeneric
// at the very end of a page that the next, unmapped page follows.
func TestStringRunPageEnd(t *testing.T) {
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	defer func() {
		if err := unix.Munmap(mem); err != nil {
			t.Error(err)
		}
	}()
	if err := unix.Mprotect(mem[page:], unix.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	cases := 0
	stringRunCases(func(b []byte) {
		cases++
		at := mem[page-len(b) : page : page]
		copy(at, b)
		checkStringRun(t, at)
	})
	if cases < 200000 {
		t.Fatalf("%d cases, want the whole table", cases)
	}
}
