//go:build !amd64 || purego

package codec

// This file stands for the string kernel where there is no assembly one
// (not amd64, or the purego build tag): scanString takes every string in
// its own eight-byte steps.

// haveStringKernel reports whether this build may have a string kernel
// faster than scanString's own eight-byte steps: not this one, so that
// the compiler drops the call.
const haveStringKernel = false

// stringRun is never called in this build: haveStringKernel is false.
var stringRun func(b []byte) (n int, high bool)
