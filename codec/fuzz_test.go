package codec_test

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/simplerpc/simplerpc/codec"
)

// fuzzSeeds are valid and hostile frames: every golden vector in both forms,
// the bad-input table, and inputs aimed at each part of the decoder.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	add := func(s string) {
		seeds = append(seeds, []byte(s))
		if len(s) < goldenSize {
			seeds = append(seeds, padTo(t, s, goldenSize))
		}
	}
	for _, v := range goldenVectors {
		add(v.original)
		add(v.ours)
	}
	for _, row := range badInputs {
		add(row.text)
	}
	for _, s := range []string{
		"", " ", "{", "}", "1{", "1{}", "-0{}", "+1{}", "1_0{}", "2147483647{}", "-2147483648{}",
		"2147483648{}", "-2147483649{}", "99999999999{}", "\x1c7\x1f{}", " \t\n\r\v\f7{}",
		"1{\"a\":1}\x00\x00\x00\x00", "1{\"a\":1}\t\n\r\v\f", "1{\"a\":1}x",
		"1{\"a\":\"\xff\"}", "1{\"a\":\"\xed\xa0\x80\"}", "1{\"a\":\"\\ud800\"}", "1{\"a\":\"\\u12G4\"}",
		`1{"a":01}`, `1{"a":-}`, `1{"a":1.}`, `1{"a":1e}`, `1{"a":1e400}`, `1{"a":-1e400}`,
		`1{"a":123456789012345678901234567890}`, `1{"a":NaN}`, `1{"a":tru}`, `1{"a":nulll}`,
		`1{"a":[1,]}`, `1{"a":1,}`, `1{"a":{]}`, `1{"a":"}"}`, `1{"a":1}{}`, `1{"a":1,"a":2}`,
		`1{"<>&":"\u2028\u2029"}`, "1{\"\xe2\x98\x83\":\"\xf0\x9f\x98\x80\"}",
		"1{\"a\":\"\t\"}", `1{"a":"\/\b\f\n\r\t\"\\"}`,
	} {
		add(s)
	}
	seeds = append(seeds,
		bytes.Repeat([]byte("{"), 1024),
		bytes.Repeat([]byte("["), 1024),
		append([]byte("1"), bytes.Repeat([]byte("{"), 1024)...),
		append([]byte(`1{"a":`), bytes.Repeat([]byte("["), 1024)...),
		append([]byte(`1{"a":"`), bytes.Repeat([]byte("x"), 1024)...),
		[]byte(`1{"a":`+strings.Repeat("[", 511)+strings.Repeat("]", 511)+"}"),
		[]byte(`1{"a":`+strings.Repeat("[", 512)+strings.Repeat("]", 512)+"}"),
	)
	return seeds
}

// FuzzDecode checks that Decode never panics, and that what it accepts is one
// valid JSON object that re-encodes to an equivalent frame.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		op, obj, err := codec.Decode(data)
		if err != nil {
			var me *codec.MalformedError
			if !errors.As(err, &me) || !errors.Is(err, codec.ErrMalformed) || me.Reason() != "MalformedPayload" || me.Message == "" {
				t.Fatalf("Decode error %T %v is not a proper *MalformedError", err, err)
			}
			if obj != nil || op != me.Op {
				t.Fatalf("on error: op %d (error says %d), obj %q", op, me.Op, obj)
			}
			if strings.HasPrefix(me.Message, "JSON malformed for opcode: ") && jsonAcceptable(data) {
				t.Fatalf("Decode rejects a frame encoding/json accepts: %v", err)
			}
			return
		}

		// obj is the frame's own bytes from its first '{'.
		brace := bytes.IndexByte(data, '{')
		if brace < 0 || len(obj) < 2 || unsafe.SliceData(obj) != &data[brace] || obj[len(obj)-1] != '}' {
			t.Fatalf("obj %q is not the object at the first '{' of %q", obj, data)
		}
		if !stdjson.Valid(obj) || !utf8.Valid(obj) {
			t.Fatalf("Decode accepts %q, which is not valid JSON in UTF-8", obj)
		}

		// It re-validates: AppendRaw takes it, and the canonical opcode is
		// never longer than the text it was read from, so it fits.
		frame, err := codec.AppendRaw(nil, len(data), op, obj)
		if err != nil {
			t.Fatalf("AppendRaw(%q) of a decoded object: %v", obj, err)
		}
		op2, obj2, err := codec.Decode(frame)
		if err != nil || op2 != op || !bytes.Equal(obj2, obj) {
			t.Fatalf("re-decode = %d, %q, %v; want %d, %q", op2, obj2, err, op, obj)
		}

		// go-json reads it; only a number beyond float64 is a type error.
		var m map[string]any
		if err := codec.Unmarshal(obj, &m); err != nil {
			var te *codec.TypeError
			if errors.As(err, &te) && strings.HasPrefix(te.Value, "number") {
				return
			}
			t.Fatalf("Unmarshal(%q): %T %v", obj, err, err)
		}
		if m == nil {
			t.Fatalf("Unmarshal(%q) gave a nil map", obj)
		}

		// Re-encoded from the value, it decodes to the same value.
		enc, err := codec.Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", m, err)
		}
		frame, err = codec.Append(nil, len(enc)+len(strconv.Itoa(int(op))), op, m)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		op3, obj3, err := codec.Decode(frame)
		var m3 map[string]any
		if err == nil {
			err = codec.Unmarshal(obj3, &m3)
		}
		if err != nil || op3 != op || !reflect.DeepEqual(m3, m) {
			t.Fatalf("re-encoded %q: %d, %#v, %v; want %d, %#v", frame, op3, m3, err, op, m)
		}
	})
}

// jsonAcceptable reports whether the JSON part of data (from the first '{')
// is, by encoding/json and utf8.Valid, one object followed by whitespace,
// nested no deeper than 512: what Decode must accept.
func jsonAcceptable(data []byte) bool {
	brace := bytes.IndexByte(data, '{')
	if brace < 0 {
		return false
	}
	rest := bytes.TrimRight(data[brace:], " \t\n\r\v\f")
	return stdjson.Valid(rest) && utf8.Valid(rest) && maxNesting(rest) <= 512
}

// maxNesting returns the deepest nesting of valid JSON b.
func maxNesting(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// FuzzScanner checks that the Scanner gives the same answer however the
// stream is cut, never passes its limit, and agrees with Decode.
func FuzzScanner(f *testing.F) {
	for i, s := range fuzzSeeds(f) {
		f.Add(s, uint16([]int{256, 64, 1024, 0, 30}[i%5]), uint64(i))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, seed uint64) {
		lim := int(limit)
		op, start, end, done, err := codec.NewScanner(lim).Scan(data)

		// Chunked, resuming the same Scanner.
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		s := codec.NewScanner(lim)
		n := 0
		var (
			cop          codec.Opcode
			cstart, cend int
			cdone        bool
			cerr         error
		)
		for {
			n = min(len(data), n+r.IntN(1+r.IntN(len(data)+1)))
			cop, cstart, cend, cdone, cerr = s.Scan(data[:n])
			if cdone || cerr != nil || n == len(data) {
				break
			}
		}
		if cdone != done || (cerr == nil) != (err == nil) || (err != nil && cerr.Error() != err.Error()) {
			t.Fatalf("chunked (at %d) = %v, %v; one-shot = %v, %v", n, cdone, cerr, done, err)
		}
		if done && (cop != op || cstart != start || cend != end) {
			t.Fatalf("chunked = %d [%d:%d], one-shot = %d [%d:%d]", cop, cstart, cend, op, start, end)
		}
		if cdone && cend > n {
			t.Fatalf("done at %d bytes with the object ending at %d", n, cend)
		}

		switch {
		case err != nil:
			var me *codec.MalformedError
			if !errors.As(err, &me) || !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("Scan error %T %v is not a *MalformedError", err, err)
			}
			if errors.Is(err, codec.ErrScanLimit) {
				if len(data) < lim {
					t.Fatalf("limit error with %d bytes, limit %d", len(data), lim)
				}
				// Never earlier: one byte less is a request for more.
				if lim > 0 {
					_, _, _, d, e := codec.NewScanner(lim).Scan(data[:lim-1])
					if d || e != nil {
						t.Fatalf("%d bytes, one under the limit: %v, %v", lim-1, d, e)
					}
				}
			}
		case done:
			if end > lim || end > len(data) || start >= end || data[start] != '{' || data[end-1] != '}' {
				t.Fatalf("done with [%d:%d] of %d bytes, limit %d", start, end, len(data), lim)
			}
			// Decode reads the same frame from those bytes, padded or not.
			for _, frame := range [][]byte{data[:end], append(bytes.Clone(data[:end]), "   "...)} {
				dop, obj, derr := codec.Decode(frame)
				if derr != nil || dop != op || !bytes.Equal(obj, data[start:end]) {
					t.Fatalf("Scanner found %d %q, Decode(%q) = %d, %q, %v", op, data[start:end], frame, dop, obj, derr)
				}
			}
		default:
			if len(data) >= lim {
				t.Fatalf("need more with %d bytes, limit %d", len(data), lim)
			}
		}

		// Conversely, a frame Decode accepts is found by the Scanner when its
		// object ends within the limit and its opcode text is short (the
		// Scanner holds at most 24 bytes of it).
		if dop, obj, derr := codec.Decode(data); derr == nil {
			b := bytes.IndexByte(data, '{')
			if b <= 24 && b+len(obj) <= lim && (!done || op != dop || start != b || end != b+len(obj)) {
				t.Fatalf("Decode reads %d %q, Scanner: %d [%d:%d] %v %v", dop, obj, op, start, end, done, err)
			}
		}
	})
}
