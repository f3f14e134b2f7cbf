//go:build amd64 && !purego

package codec

// This file selects the string kernel on amd64: the AVX2 assembly of
// strrun_amd64.s when the CPU and the OS support AVX2.

import "golang.org/x/sys/cpu"

// haveStringKernel reports whether this build may have a string kernel
// faster than scanString's own eight-byte steps; stringRun says whether
// this machine has it.
const haveStringKernel = true

// stringRun is the string kernel scanLongString calls for long strings:
// stringRunAVX2 where the CPU and the OS support AVX2, nil elsewhere. It is
// set once, when the package is initialised, and never changes (tests
// swap it to count its calls).
var stringRun = pickStringRun()

func pickStringRun() func(b []byte) (n int, high bool) {
	if cpu.X86.HasAVX2 {
		return stringRunAVX2
	}
	return nil
}

// stringRunAVX2 computes stringRunGeneric(b) 32 bytes a step with AVX2. It
// needs a CPU with AVX2. Safe from any goroutine.
//
//go:noescape
func stringRunAVX2(b []byte) (n int, high bool)
