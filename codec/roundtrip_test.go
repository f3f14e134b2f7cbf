package codec_test

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
)

// runePool mixes the characters that stress an encoder: JSON's specials,
// control characters, HTML characters go-json escapes, the two line
// separators JavaScript dislikes, 2-, 3- and 4-byte UTF-8.
var runePool = []rune("aZ09 _-\"\\/\b\f\n\r\t\x00\x01\x1f\x7f<>&'{}[]:,é☃€\u2028\u2029\ufeff\ufffd😀𝄞\U0010ffff")

func randString(r *rand.Rand) string {
	n := r.IntN(12)
	var b strings.Builder
	for range n {
		switch r.IntN(4) {
		case 0:
			// Any scalar value outside the surrogates.
			c := rune(r.IntN(0x10ffff + 1))
			if c >= 0xd800 && c <= 0xdfff {
				c = 'x'
			}
			b.WriteRune(c)
		default:
			b.WriteRune(runePool[r.IntN(len(runePool))])
		}
	}
	return b.String()
}

func randNumber(r *rand.Rand) float64 {
	switch r.IntN(6) {
	case 0:
		return float64(r.IntN(1000) - 500)
	case 1:
		return float64(r.Int64N(1<<53) - 1<<52)
	case 2:
		return r.NormFloat64() * 1e3
	case 3:
		return math.Float64frombits(r.Uint64()&^(0x7ff<<52) | uint64(r.IntN(0x7ff))<<52) // finite, any exponent
	case 4:
		return []float64{0, math.Copysign(0, -1), 5e-324, math.MaxFloat64, -math.MaxFloat64, 1e21, 1e-7}[r.IntN(7)]
	}
	return float64(r.Int32())
}

// randValue returns a random JSON value in the form encoding into any gives:
// map[string]any, []any, string, float64, bool or nil.
func randValue(r *rand.Rand, depth int) any {
	k := r.IntN(10)
	if depth <= 0 && k < 4 {
		k += 4
	}
	switch k {
	case 0, 1:
		return randObject(r, depth-1)
	case 2, 3:
		a := make([]any, r.IntN(5))
		for i := range a {
			a[i] = randValue(r, depth-1)
		}
		return a
	case 4, 5:
		return randString(r)
	case 6, 7:
		return randNumber(r)
	case 8:
		return r.IntN(2) == 0
	}
	return nil
}

func randObject(r *rand.Rand, depth int) map[string]any {
	m := make(map[string]any, 4)
	for n := r.IntN(6); n > 0; n-- {
		m[randString(r)] = randValue(r, depth)
	}
	return m
}

func randOpcode(r *rand.Rand) codec.Opcode {
	switch r.IntN(4) {
	case 0:
		return codec.Opcode(r.Int32())
	case 1:
		return -codec.Opcode(r.Int32()) - 1
	case 2:
		return []codec.Opcode{0, math.MaxInt32, math.MinInt32, codec.OpFailure, codec.OpMessageSize}[r.IntN(5)]
	}
	return codec.Opcode(r.IntN(100))
}

// TestRandomRoundTrip encodes random objects, decodes them and checks that
// every step agrees: Append, AppendRaw, Decode, Unmarshal, the Scanner.
func TestRandomRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	const iterations = 3000
	sizes := []int{64, 128, 256, 1024, 4096}
	buf := make([]byte, 0, 4096)
	var fitted, tooLarge int
	for i := range iterations {
		v := randObject(r, 4)
		op := randOpcode(r)
		size := sizes[r.IntN(len(sizes))]

		obj, err := codec.Marshal(v)
		if err != nil {
			t.Fatalf("#%d Marshal(%#v): %v", i, v, err)
		}
		head := strconv.Itoa(int(op))
		buf, err = codec.Append(buf[:0], size, op, v)
		if len(head)+len(obj) > size {
			if !errors.Is(err, codec.ErrFrameTooLarge) || len(buf) != 0 {
				t.Fatalf("#%d: %d bytes in a %d frame: %q, %v", i, len(head)+len(obj), size, buf, err)
			}
			tooLarge++
			continue
		}
		if err != nil {
			t.Fatalf("#%d Append: %v", i, err)
		}
		fitted++
		if len(buf) != size || string(buf[:len(head)]) != head || !bytes.Equal(buf[len(head):len(head)+len(obj)], obj) {
			t.Fatalf("#%d: frame %q, want %s%s padded to %d", i, buf, head, obj, size)
		}
		if strings.Trim(string(buf[len(head)+len(obj):]), " ") != "" {
			t.Fatalf("#%d: padding is not spaces: %q", i, buf)
		}

		gotOp, gotObj, err := codec.Decode(buf)
		if err != nil || gotOp != op || !bytes.Equal(gotObj, obj) {
			t.Fatalf("#%d Decode(%q) = %d, %q, %v", i, buf, gotOp, gotObj, err)
		}
		var back map[string]any
		if err := codec.Unmarshal(gotObj, &back); err != nil {
			t.Fatalf("#%d Unmarshal(%s): %v", i, gotObj, err)
		}
		if !reflect.DeepEqual(back, v) {
			t.Fatalf("#%d: round trip changed the value\n got %#v\nwant %#v", i, back, v)
		}
		if !reflect.DeepEqual(stdAny(t, gotObj), any(v)) {
			t.Fatalf("#%d: encoding/json reads %s differently", i, gotObj)
		}

		// AppendRaw of the same object makes the same frame.
		raw, err := codec.AppendRaw(nil, size, op, obj)
		if err != nil || !bytes.Equal(raw, buf) {
			t.Fatalf("#%d AppendRaw = %q, %v", i, raw, err)
		}

		// The same data indented (whitespace inside the object) decodes to
		// the same value.
		var ind bytes.Buffer
		if err := stdjson.Indent(&ind, obj, "\r", "\t"); err != nil {
			t.Fatal(err)
		}
		if ind.Len()+len(head) <= size {
			f, err := codec.AppendRaw(nil, size, op, ind.Bytes())
			if err != nil {
				t.Fatalf("#%d AppendRaw(indented): %v", i, err)
			}
			o2, obj2, err := codec.Decode(f)
			var back2 map[string]any
			if err == nil {
				err = codec.Unmarshal(obj2, &back2)
			}
			if err != nil || o2 != op || !reflect.DeepEqual(back2, v) {
				t.Fatalf("#%d indented: %d, %v", i, o2, err)
			}
		}

		// The Scanner finds the same end one-shot and in random chunks.
		checkScannerChunks(t, r, buf, size, op, len(head), len(head)+len(obj))
	}
	if fitted < iterations/2 || tooLarge == 0 {
		t.Errorf("generator is off balance: %d fitted, %d too large", fitted, tooLarge)
	}
}

// checkScannerChunks scans frame one-shot and then in random chunks, and
// checks both find the object at [start, end).
func checkScannerChunks(t *testing.T, r *rand.Rand, frame []byte, limit int, op codec.Opcode, start, end int) {
	t.Helper()
	s := codec.NewScanner(limit)
	gotOp, gotStart, gotEnd, done, err := s.Scan(frame)
	if err != nil || !done || gotOp != op || gotStart != start || gotEnd != end {
		t.Fatalf("one-shot Scan(%q) = %d, %d, %d, %v, %v; want %d, %d, %d", frame, gotOp, gotStart, gotEnd, done, err, op, start, end)
	}
	s.Reset()
	n := 0
	for {
		// Mostly small steps, sometimes a big one, sometimes none.
		switch r.IntN(3) {
		case 0:
			n += r.IntN(3)
		case 1:
			n += 1 + r.IntN(16)
		default:
			n += r.IntN(len(frame) + 1)
		}
		n = min(n, len(frame))
		gotOp, gotStart, gotEnd, done, err = s.Scan(frame[:n])
		if err != nil {
			t.Fatalf("chunked Scan(%q) at %d: %v", frame, n, err)
		}
		if n < end {
			if done {
				t.Fatalf("chunked Scan: done at %d bytes, the object ends at %d", n, end)
			}
			continue
		}
		if !done || gotOp != op || gotStart != start || gotEnd != end {
			t.Fatalf("chunked Scan(%q) at %d = %d, %d, %d, %v; want %d, %d, %d", frame, n, gotOp, gotStart, gotEnd, done, op, start, end)
		}
		return
	}
}

// TestOriginalReadsRandomFrames feeds random frames of ours to python3
// running the original's reading, and checks it reads what we encoded.
func TestOriginalReadsRandomFrames(t *testing.T) {
	t.Parallel()
	const size = 1024
	r := rand.New(rand.NewPCG(3, 4))
	var frames [][]byte
	var objs [][]byte
	var ops []codec.Opcode
	for len(frames) < 300 {
		v := randObject(r, 4)
		op := randOpcode(r)
		f, err := codec.Append(nil, size, op, v)
		if errors.Is(err, codec.ErrFrameTooLarge) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := codec.Marshal(v)
		frames, objs, ops = append(frames, f), append(objs, obj), append(ops, op)
	}
	for i, res := range runPython(t, size, frames) {
		if !res.OK {
			t.Errorf("frame %q: the original fails with %s: %s", bytes.TrimRight(frames[i], " "), res.Kind, res.Error)
			continue
		}
		if res.Op != int64(ops[i]) || !res.SpacesOnly {
			t.Errorf("frame %d: the original reads opcode %d (spaces only %v), want %d", i, res.Op, res.SpacesOnly, ops[i])
		}
		if !reflect.DeepEqual(stdAny(t, res.Data), stdAny(t, objs[i])) {
			t.Errorf("frame %d: the original reads\n%s\nwant\n%s", i, res.Data, objs[i])
		}
	}
}
