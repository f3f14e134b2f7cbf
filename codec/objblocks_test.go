package codec

// This file holds the block validator to the scalar one: whatever it
// accepts, validObjectScalar accepts with the same length.

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// checkBlocks fails when validObjectBlocks accepts b where
// validObjectScalar does not, or with another length.
func checkBlocks(t *testing.T, b []byte, base int) (ok bool) {
	t.Helper()
	n, ok := validObjectBlocks(b, base)
	wn, wok := validObjectScalar(b, base)
	if ok && (!wok || n != wn) {
		t.Fatalf("%q at depth %d: blocks (%d, true), scalar (%d, %v)", b, base, n, wn, wok)
	}
	return ok
}

// randomObject writes a random object of roughly size bytes with the
// tokens the block validator reads: strings of every length (across block
// boundaries too, some with an escape or UTF-8), numbers, literals, nested
// containers, white space.
func randomObject(rng *rand.Rand, size int) []byte {
	var b strings.Builder
	space := func() {
		if rng.IntN(4) == 0 {
			b.WriteString([]string{" ", "\t", "\n ", "\r\n"}[rng.IntN(4)])
		}
	}
	var value func(depth int)
	str := func() {
		s := strings.Repeat("abcdefgh", 9)[:rng.IntN(70)]
		if rng.IntN(8) == 0 { // long: the string kernel's, where there is one
			s = strings.Repeat(s+"x", 1+rng.IntN(8))
		}
		if len(s) > 0 && rng.IntN(3) == 0 { // an escape or a UTF-8 sequence somewhere
			k := rng.IntN(len(s))
			s = s[:k] + []string{`\"`, `\\`, `\/`, `\n`, `\u00e9`, `\uD83D\uDE00`, "\xc3\xa9", "\xe2\x98\x83", "\xf0\x9f\x98\x80"}[rng.IntN(9)] + s[k:]
		}
		b.WriteString(`"` + s + `"`)
	}
	value = func(depth int) {
		switch r := rng.IntN(10); {
		case r < 3:
			str()
		case r < 5:
			b.WriteString([]string{"0", "-1", "12.5", "-3.25e+10", "123456789", "1E5", "0.001"}[rng.IntN(7)])
		case r < 6:
			b.WriteString([]string{"true", "false", "null"}[rng.IntN(3)])
		case r < 8 && depth < 6:
			b.WriteString("[")
			for i := range rng.IntN(5) {
				if i > 0 {
					b.WriteString(",")
				}
				space()
				value(depth + 1)
				space()
			}
			b.WriteString("]")
		case depth < 6:
			object(&b, rng, depth+1, 3, space, str, value)
		default:
			str()
		}
	}
	b.WriteString("{")
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		space()
		str()
		space()
		b.WriteString(":")
		space()
		value(1)
		space()
	}
	b.WriteString("}")
	return []byte(b.String())
}

// object writes an object of up to n members.
func object(b *strings.Builder, rng *rand.Rand, depth, n int, space, str func(), value func(int)) {
	b.WriteString("{")
	for i := range rng.IntN(n + 1) {
		if i > 0 {
			b.WriteString(",")
		}
		space()
		str()
		b.WriteString(":")
		value(depth)
		space()
	}
	b.WriteString("}")
}

// TestValidObjectBlocksRandom checks random objects of up to a few blocks,
// whole and mutated (a byte replaced, added or removed anywhere, a block
// boundary too), at depth 0 and 1, followed by padding or not: the block
// validator takes every whole one, and never accepts what the scalar one
// refuses.
func TestValidObjectBlocksRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	alphabet := []byte("{}[]\",: \t\n-+.0123456789eEtrufalsn\\\x00\x1f\x7f\xc3\xa9\xffxAu")
	taken := 0
	for round := range 20000 {
		b := randomObject(rng, 20+rng.IntN(400))
		if round%2 == 0 {
			b = append(b, strings.Repeat(" ", rng.IntN(130))...)
		}
		if !checkBlocks(t, b, round%2) {
			t.Fatalf("%q: a valid object without escapes not taken", b)
		}
		for range 1 + rng.IntN(3) {
			i := rng.IntN(len(b) + 1)
			if rng.IntN(3) == 0 && len(b) > 64 { // at a block boundary
				i = 64 * (1 + rng.IntN(len(b)/64))
				i = min(i+rng.IntN(3)-1, len(b))
			}
			switch c := alphabet[rng.IntN(len(alphabet))]; rng.IntN(3) {
			case 0:
				if i < len(b) {
					b[i] = c
				}
			case 1:
				b = append(b[:i], append([]byte{c}, b[i:]...)...)
			case 2:
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			}
		}
		if checkBlocks(t, b, round%2) {
			taken++
		}
	}
	if taken == 0 {
		t.Fatal("no mutant taken by the block validator: the comparison proves nothing")
	}
}

// TestValidObjectBlocksDepth checks the depth limit at block boundaries.
func TestValidObjectBlocksDepth(t *testing.T) {
	for _, n := range []int{maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 1} {
		for _, open := range []string{"[", `{"k":`} {
			closer := "]"
			if open != "[" {
				closer = "}"
			}
			b := []byte(`{"a":` + strings.Repeat(open, n) + "1" + strings.Repeat(closer, n) + "}")
			for base := range 3 {
				checkBlocks(t, b, base)
			}
		}
	}
	for base := range []int{0, 1, maxDepth - 1, maxDepth} {
		checkBlocks(t, []byte(`{"a":[`+strconv.Itoa(base)+`]}`), base)
	}
}

// FuzzValidObjectBlocks checks the block validator against the scalar one
// on any input, at depth 0 and 1.
func FuzzValidObjectBlocks(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(benchObject))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkBlocks(t, b, 0)
		checkBlocks(t, b, 1)
	})
}
