package codec

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// scannerVerdict is the reference: what the resumable scanner says of b fed
// in one piece, its strings then checked as UTF-8 as Decode checks them.
func scannerVerdict(b []byte) (n int, ok bool) {
	var s jsonScanner
	n, done, good := s.feed(b)
	if !good || !done || !s.validUTF8(b[:n]) {
		return 0, false
	}
	return n, true
}

// checkSameVerdict fails when validObject and the scanner disagree on b.
func checkSameVerdict(t *testing.T, b []byte) {
	t.Helper()
	n, ok := validObject(b)
	wn, wok := scannerVerdict(b)
	if n != wn || ok != wok {
		t.Fatalf("%q: validObject (%d, %v), scanner (%d, %v)", b, n, ok, wn, wok)
	}
}

var validSeeds = []string{
	`{}`, `{"a":1}`, ` {}`, `{"a":1} `, `{"a":[1,2,{"b":null}],"c":true,"d":false}`,
	`{"a":-0.5e+10,"b":0,"c":-0,"d":1E5,"e":12.25e-3}`, `{"a":"\"\\\/\b\f\n\r\t\u00e9"}`,
	"{\"\xe2\x98\x83\":\"\xf0\x9f\x98\x80\"}", "{\"a\":\"\xff\"}", `{ "a" : [ 1 , 2 ] , "b" : { } }`,
	"{\t\"a\"\r:\n1}", `{"a":[]}`, `{"a":[[]]}`, `{"a":"` + strings.Repeat("x", 37) + `"}`,
	// Long strings, which the string kernel reads where there is one.
	`{"a":"` + strings.Repeat("x", 200) + `"}`, `{"` + strings.Repeat("k", 100) + `":"` + strings.Repeat("\n", 40) + `"}`,
	`{"a":"` + strings.Repeat("x", 100) + `\u00e9` + strings.Repeat("y", 90) + `"}`,
	"{\"a\":\"" + strings.Repeat("h\xc3\xa9llo ", 20) + "\"}", "{\"a\":\"" + strings.Repeat("x", 150) + "\xff\"}",
	"{\"a\":\"" + strings.Repeat("x", 100) + "\x1f" + strings.Repeat("x", 40) + "\"}",
	`{"a":"` + strings.Repeat("x", 130) + `\q"}`, `{"a":"` + strings.Repeat("x", 96),
	// Invalid, each way the grammar can break.
	``, `{`, `}`, `[]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1 "b":2}`, `{"a":[1,]}`, `{"a":[1}`,
	`{"a":{]}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":1e+}`, `{"a":+1}`,
	`{"a":tru}`, `{"a":truex}`, `{"a":nul}`, `{"a":falsy}`, `{"a":NaN}`, `{"a":"\x}`, `{"a":"\u12G4"}`,
	`{"a":"\u12"}`, "{\"a\":\"\t\"}", "{\"a\":\"\x00\"}", `{"a":"abc`, `{"a":"abc\`, `{a:1}`, `{'a':1}`,
	`{"a":1}}`, `{"a":1}x`, `{"a"::1}`, `{"a":1,"b"}`, "{\"a\":1\v}", `{"a":-01}`, `{"a":1.5.5}`,
	`{"a":[1 2]}`, `{"a":["x" "y"]}`, `{"a":[,1]}`, `{"a":{"b":1,}}`, `{"a":]`, `{"a":}}`,
}

func TestValidObjectMatchesScanner(t *testing.T) {
	for _, s := range validSeeds {
		checkSameVerdict(t, []byte(s))
		// Every prefix: input ending anywhere.
		for i := range len(s) {
			checkSameVerdict(t, []byte(s[:i]))
		}
	}
	deep := func(n int, open, close string) []byte {
		return []byte(`{"a":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}`)
	}
	for _, n := range []int{maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 5} {
		checkSameVerdict(t, deep(n, "[", "]"))
		checkSameVerdict(t, []byte(`{"a":`+strings.Repeat(`{"b":`, n)+"1"+strings.Repeat("}", n)+"}"))
	}
	if _, ok := validObject(deep(maxDepth-1, "[", "]")); !ok {
		t.Fatalf("depth %d refused", maxDepth)
	}
	if _, ok := validObject(deep(maxDepth, "[", "]")); ok {
		t.Fatalf("depth %d accepted", maxDepth+1)
	}
}

// TestValidObjectRandom mutates valid objects byte by byte: each mutant gets
// the same verdict from both readers.
func TestValidObjectRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	alphabet := []byte("{}[]\",:\\ -+.0123456789eEtrufalsn\x00\x1f\x7f\xc3\xa9\xffux/")
	for range 20000 {
		b := []byte(validSeeds[rng.IntN(14)])
		for range 1 + rng.IntN(3) {
			switch i := rng.IntN(len(b) + 1); rng.IntN(3) {
			case 0: // replace
				if i < len(b) {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				}
			case 1: // insert
				b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
			case 2: // delete
				if i < len(b) {
					b = append(b[:i], b[i+1:]...)
				}
			}
		}
		checkSameVerdict(t, b)
	}
}

func TestValidObjectAllocs(t *testing.T) {
	b := []byte(validSeeds[4])
	if n := testing.AllocsPerRun(100, func() { validObject(b) }); n != 0 {
		t.Fatalf("validObject allocates %.0f times", n)
	}
}

// FuzzValidObject checks the fast validator against the resumable scanner
// on any input.
func FuzzValidObject(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSameVerdict(t, b) })
}

// benchObject looks like a small application message, the echo object of
// the benchmarks module.
const benchObject = `{"t":"0000000000000000000","user":"bench-user-0042","seq":123456,` +
	`"tags":["alpha","beta","gamma"],"pos":{"x":12.5,"y":-3.25,"z":0},"ok":true,` +
	`"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// BenchmarkValidate compares the fast validator with the resumable scanner
// on one message.
func BenchmarkValidate(b *testing.B) {
	obj := []byte(benchObject)
	b.Run("impl=fast", func(b *testing.B) {
		b.SetBytes(int64(len(obj)))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, ok := validObject(obj); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("impl=scanner", func(b *testing.B) {
		b.SetBytes(int64(len(obj)))
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, ok := scannerVerdict(obj); !ok {
				b.Fatal("refused")
			}
		}
	})
}

// TestObjectPrefix checks objectPrefix against Object on every seed: the
// same verdict, the object's length, and the rest of the input ignored;
// and that depth counts from the enclosing object.
func TestObjectPrefix(t *testing.T) {
	for _, s := range validSeeds {
		if len(s) == 0 || s[0] != '{' {
			if _, err := objectPrefix([]byte(s), 0); err == nil {
				t.Errorf("%q: accepted without an object at the start", s)
			}
			continue
		}
		obj, objErr := Object([]byte(s))
		n, err := objectPrefix([]byte(s+`,"tail"} x`), 0)
		// Object trims trailing white space and refuses trailing data;
		// objectPrefix stops at the object's end.
		if objErr == nil && (err != nil || n != len(obj)) {
			t.Errorf("%q: objectPrefix = (%d, %v), Object took %d bytes", s, n, err, len(obj))
		}
		if err == nil {
			if _, objErr := Object([]byte(s[:n])); objErr != nil {
				t.Errorf("%q: objectPrefix took %d bytes that Object refuses: %v", s, n, objErr)
			}
		} else if !errors.Is(err, ErrNotObject) {
			t.Errorf("%q: error %v does not wrap ErrNotObject", s, err)
		}
	}
	nested := func(n int) []byte { // n levels in all
		return []byte(strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1))
	}
	if _, err := objectPrefix(nested(maxDepth), 0); err != nil {
		t.Errorf("%d levels at depth 0 refused: %v", maxDepth, err)
	}
	if _, err := objectPrefix(nested(maxDepth-1), 1); err != nil {
		t.Errorf("%d levels at depth 1 refused: %v", maxDepth-1, err)
	}
	if _, err := objectPrefix(nested(maxDepth), 1); err == nil {
		t.Errorf("%d levels at depth 1 accepted", maxDepth)
	}
	for _, d := range []int{-1, maxDepth} {
		if _, err := objectPrefix([]byte(`{}`), d); err == nil {
			t.Errorf("depth %d accepted", d)
		}
	}
	b := []byte(`{"a":[1,"x",{"b":null}]}   `)
	if n := testing.AllocsPerRun(100, func() { _, _ = objectPrefix(b, 1) }); n != 0 {
		t.Errorf("objectPrefix allocates %.0f times, want 0", n)
	}
}

// cpuPerOp starts counting the process's CPU time; the function it returns
// reports it per iteration as cpu-ns/op. Unlike ns/op it leaves out the
// time the benchmark waited for a core, so that it holds on a shared
// machine. Use: defer cpuPerOp(b)().
func cpuPerOp(b *testing.B) func() {
	start := processCPU()
	return func() {
		if end := processCPU(); start >= 0 && end >= 0 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

// TestPlainOpcode holds Decode's short path for the opcode to parseOpcode:
// on every text of up to five bytes from the characters that matter, and
// on every plain opcode of up to four digits, what plainOpcode reads is
// what the search for '{' and parseOpcode read.
func TestPlainOpcode(t *testing.T) {
	check := func(frame []byte) {
		op, brace, ok := plainOpcode(frame)
		if !ok {
			return
		}
		want, wok := parseOpcode(frame[:brace])
		if !wok || op != want || brace != strings.IndexByte(string(frame), '{') {
			t.Fatalf("%q: plainOpcode (%d, %d), parseOpcode (%d, %v)", frame, op, brace, want, wok)
		}
	}
	const alphabet = "-+09 {_"
	var gen func(prefix []byte)
	gen = func(prefix []byte) {
		check(prefix)
		if len(prefix) == 5 {
			return
		}
		for i := range len(alphabet) {
			gen(append(prefix, alphabet[i]))
		}
	}
	gen(nil)
	taken := 0
	for _, sign := range []string{"", "-"} {
		for v := range 10000 {
			for _, f := range []string{"%d{", "%02d{", "%03d{", "%04d{"} {
				frame := []byte(sign + fmt.Sprintf(f, v))
				if _, _, ok := plainOpcode(frame); ok {
					taken++
				}
				check(frame)
			}
		}
	}
	if taken < 2*10000 {
		t.Errorf("plainOpcode took %d plain opcodes, want every one of up to four digits", taken)
	}
}
