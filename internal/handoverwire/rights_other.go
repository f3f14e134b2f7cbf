//go:build !unix

// This file stands in for the control messages where there are none: off
// Unix no descriptor can be passed, so a batch with connections fails.

package handoverwire

import "errors"

var errNoRights = errors.New("engine: handover: not supported on this system")

func closeFD(int)                       {}
func unixRights([]int) []byte           { return nil }
func rightsSpace(int) int               { return 0 }
func truncated(int) bool                { return false }
func parseRights([]byte) ([]int, error) { return nil, errNoRights }
