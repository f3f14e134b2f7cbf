//go:build !unix

// This file holds the handover's system calls where there are none: off
// Unix no descriptor can be passed, so HandOver and Adopt fail at the
// first connection or batch.

package engine

import "errors"

var errNoHandover = errors.New("engine: handover: not supported on this system")

func dupFD(int) (int, error) { return -1, errNoHandover }
