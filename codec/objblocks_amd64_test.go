//go:build amd64 && !purego

package codec

// This file holds the AVX2 block classifier to its Go reference,
// classifyGeneric, and pins that the validator reads the common objects
// through it.

import (
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestClassifyMatchesGeneric compares the assembly with the reference on
// random batches of blocks: every byte value, and the bytes the masks
// mark, often.
func TestClassifyMatchesGeneric(t *testing.T) {
	if hasBlocks != cpu.X86.HasAVX2 {
		t.Fatalf("block classifier chosen: %v, CPU has AVX2: %v", hasBlocks, cpu.X86.HasAVX2)
	}
	if !hasBlocks {
		t.Skip("no AVX2: the validator has no block classifier to call")
	}
	rng := rand.New(rand.NewPCG(3, 5))
	marked := []byte("\"\\{}[]:, \t\n\r\x00\x1f\x20\x7f\x80\xff[]{}")
	var buf [blockBatch * 64]byte
	for round := range 20000 {
		for i := range buf {
			if rng.IntN(2) == 0 {
				buf[i] = marked[rng.IntN(len(marked))]
			} else {
				buf[i] = byte(rng.IntN(256))
			}
		}
		n := 1 + round%blockBatch
		var got [blockBatch]blockMasks
		classify(&buf[0], n, &got[0])
		for k := range blockBatch {
			var want blockMasks
			if k < n {
				classifyGeneric((*[64]byte)(buf[k*64:]), &want)
			}
			if got[k] != want {
				t.Fatalf("round %d, block %d of %d: classify %+v, reference %+v", round, k, n, got[k], want)
			}
		}
	}
}

// TestEchoObjectTakesBlocks checks that the objects peers send are read
// by the block validator (what makes it worth having), escapes and UTF-8
// included, and that those it leaves still get the right verdict.
func TestEchoObjectTakesBlocks(t *testing.T) {
	if !hasBlocks {
		t.Skip("no AVX2: the validator has no block classifier to call")
	}
	frame := benchObject + strings.Repeat(" ", 64)
	for _, obj := range []string{benchObject, frame, `{"a":1}`, `{ "id": 1, "op": 7, "data": {"x": [1, 2.5, "y"]} }`,
		`{"a":"\n\"\\\u00e9"}`, "{\"a\":\"h\xc3\xa9llo \xe2\x98\x83\"}"} {
		if n, ok := validObjectBlocks([]byte(obj), 0); !ok || n != len(strings.TrimRight(obj, " ")) {
			t.Errorf("%.40q: validObjectBlocks (%d, %v)", obj, n, ok)
		}
	}
	for _, obj := range []string{"{\"a\":\"\xff\"}", "{\"a\":1,\t\"b\":2}\v", "{\"a\":\"\\q\"}"} {
		if _, ok := validObjectBlocks([]byte(obj), 0); ok {
			t.Errorf("%q: validObjectBlocks took it, the scalar validator should", obj)
		}
		n, ok := validObject([]byte(obj))
		if wn, wok := validObjectScalar([]byte(obj), 0); n != wn || ok != wok {
			t.Errorf("%q: validObject (%d, %v), the scalar validator (%d, %v)", obj, n, ok, wn, wok)
		}
	}
}
