//go:build !amd64 || purego

package codec

// This file stands for the block classifier where there is no assembly
// one (not amd64, or the purego build tag): validObjectAt always takes
// validObjectScalar, and classify, the Go reference, is there for the
// tests of validObjectBlocks.

import "unsafe"

// haveBlockKernel reports whether this build may have a block classifier:
// not this one, so that the compiler drops the block validator.
const haveBlockKernel = false

// hasBlocks is false: there is no block classifier in this build.
const hasBlocks = false

// classify classifies n blocks of 64 bytes at p into out[:n] with
// classifyGeneric. Safe from any goroutine.
func classify(p *byte, n int, out *blockMasks) {
	b := unsafe.Slice(p, n*64)
	masks := unsafe.Slice(out, n)
	for k := range masks {
		classifyGeneric((*[64]byte)(b[k*64:]), &masks[k])
	}
}
