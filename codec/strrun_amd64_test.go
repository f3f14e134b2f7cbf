//go:build amd64 && !purego

package codec

// This file pins the AVX2 string kernel in place: chosen where the CPU has
// AVX2, and called by the validator for long strings, not for short ones.

import (
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestLongStringUsesKernel counts the kernel's calls and the bytes it
// takes while the scalar validator (what validObject falls back to, and
// what reads strings where there is no block classifier) reads objects
// with long and short strings.
func TestLongStringUsesKernel(t *testing.T) {
	if (stringRun != nil) != cpu.X86.HasAVX2 {
		t.Fatalf("string kernel chosen: %v, CPU has AVX2: %v", stringRun != nil, cpu.X86.HasAVX2)
	}
	if stringRun == nil {
		t.Skip("no AVX2: the validator has no kernel to call")
	}
	kernel := stringRun
	var calls, taken int
	stringRun = func(b []byte) (int, bool) {
		n, h := kernel(b)
		calls++
		taken += n
		return n, h
	}
	defer func() { stringRun = kernel }()

	long := strings.Repeat("lorem ipsum \xc3\xa9 ", 40) // 600 bytes
	for _, tc := range []struct {
		obj          string
		calls, taken int // taken: at least
	}{
		{`{"a":"` + long + `"}`, 1, len(long) - longString - 8 - stringRunBlock},
		{`{"` + long + `":1,"b":"` + long + `"}`, 2, 2 * (len(long) - longString - 8 - stringRunBlock)},
		// An escape: the kernel stops at it, and is called again after.
		{`{"a":"` + long + `\n` + long + `"}`, 2, 2 * (len(long) - longString - 8 - stringRunBlock)},
		{`{"a":"` + long[:longString-1] + `","b":"` + long[:20] + `"}` + strings.Repeat(" ", 100), 0, 0},
	} {
		calls, taken = 0, 0
		if n, ok := validObjectScalar([]byte(tc.obj), 0); !ok || n != len(strings.TrimRight(tc.obj, " ")) {
			t.Fatalf("%.40q: validObjectScalar = (%d, %v)", tc.obj, n, ok)
		}
		if calls != tc.calls || taken < tc.taken {
			t.Errorf("%.40q: %d kernel calls took %d bytes, want %d calls and at least %d bytes", tc.obj, calls, taken, tc.calls, tc.taken)
		}
	}
}
