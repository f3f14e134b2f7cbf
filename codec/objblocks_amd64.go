//go:build amd64 && !purego

package codec

// This file selects the block classifier on amd64: the AVX2 assembly of
// objblocks_amd64.s when the CPU and the OS support AVX2.

import "golang.org/x/sys/cpu"

// haveBlockKernel reports whether this build may have a block classifier
// that makes validObjectBlocks faster than validObjectScalar; hasBlocks
// says whether this machine has it.
const haveBlockKernel = true

// hasBlocks reports whether this machine has the block classifier. Set
// once, when the package is initialised; never changed.
var hasBlocks = cpu.X86.HasAVX2

// classify classifies n blocks of 64 bytes at p into out[:n]. Only called
// where hasBlocks. Safe from any goroutine.
func classify(p *byte, n int, out *blockMasks) { classifyAVX2(p, n, out) }

// classifyAVX2 computes classifyGeneric for n consecutive blocks with
// AVX2. It needs a CPU with AVX2. Safe from any goroutine.
//
//go:noescape
func classifyAVX2(p *byte, n int, out *blockMasks)
