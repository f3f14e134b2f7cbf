package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
)

// scanCase is a stream whose first object is at [start, end).
type scanCase struct {
	name       string
	stream     string
	op         codec.Opcode
	start, end int
}

func scanCases() []scanCase {
	var cs []scanCase
	add := func(name, frame string, op codec.Opcode) {
		start := strings.IndexByte(frame, '{')
		end := len(strings.TrimRight(frame, " \t\r\n\v\f"))
		cs = append(cs, scanCase{name, frame, op, start, end})
	}
	for _, v := range goldenVectors {
		add("original/"+v.name, v.original, v.op)
		add("ours/"+v.name, v.ours, v.op)
	}
	add("braces_in_strings", `-2{"a":"}}{{\"}","b\\":["]"],"c":{"d":{}}}`, codec.OpMessageSize)
	add("escapes", `-2{"message_size":512,"x":"\u00e9\n\"\\"}`, codec.OpMessageSize)
	add("sign_and_space", " \t+12 {\"a\": 1}", 12)
	add("numbers_at_end", `3{"a":[0,-1.5e+3,10]}`, 3)
	add("literal_at_end", `3{"a":true,"b":[null]}`, 3)
	add("non_ascii", `3{"é":"☃😀"}`, 3)
	return cs
}

// TestScannerPrefixes checks the Scanner asks for more on every proper
// prefix, fresh and resumed, and finds the end on the whole frame, whatever
// follows it.
func TestScannerPrefixes(t *testing.T) {
	t.Parallel()
	for _, c := range scanCases() {
		t.Run(c.name, func(t *testing.T) {
			// The frame, then its padding, then the next frame.
			stream := append(padTo(t, c.stream, goldenSize), padTo(t, `1{"next":true}`, goldenSize)...)
			resumed := codec.NewScanner(goldenSize)
			for n := 0; n <= c.end; n++ {
				fresh := codec.NewScanner(goldenSize)
				for _, s := range []*codec.Scanner{fresh, resumed} {
					op, start, end, done, err := s.Scan(stream[:n])
					if err != nil {
						t.Fatalf("Scan(%q): %v", stream[:n], err)
					}
					if n < c.end && done {
						t.Fatalf("Scan(%q): done before the object ends", stream[:n])
					}
					if n == c.end && (!done || op != c.op || start != c.start || end != c.end) {
						t.Fatalf("Scan(%q) = %d, %d, %d, %v; want %d, %d, %d",
							stream[:n], op, start, end, done, c.op, c.start, c.end)
					}
				}
			}
			// One-shot over everything received, including the next frame.
			op, start, end, done, err := codec.NewScanner(goldenSize).Scan(stream)
			if err != nil || !done || op != c.op || start != c.start || end != c.end {
				t.Fatalf("Scan(stream) = %d, %d, %d, %v, %v", op, start, end, done, err)
			}
			// What the Scanner found is what Decode reads from the frame.
			dop, obj, err := codec.Decode(stream[:goldenSize])
			if err != nil || dop != op || !bytes.Equal(obj, stream[start:end]) {
				t.Errorf("Decode = %d, %q, %v; Scanner found %q", dop, obj, err, stream[start:end])
			}
		})
	}
}

// TestScannerFirstFrame is the client's use: learn the size from the first
// frame, then read frames of that size.
func TestScannerFirstFrame(t *testing.T) {
	var stream []byte
	stream, _ = codec.AppendMessageSize(stream, 512, 512)
	stream, _ = codec.Append(stream, 512, 5, map[string]int{"x": 1})
	s := codec.NewScanner(codec.MaxMessageSize)
	var (
		op       codec.Opcode
		start    int
		end      int
		done     bool
		err      error
		received int
	)
	for !done {
		received += 7 // bytes trickle in
		if op, start, end, done, err = s.Scan(stream[:min(received, len(stream))]); err != nil {
			t.Fatal(err)
		}
	}
	var ms struct {
		MessageSize int `json:"message_size"`
	}
	if op != codec.OpMessageSize || codec.Unmarshal(stream[start:end], &ms) != nil || ms.MessageSize != 512 {
		t.Fatalf("first frame: %d %q", op, stream[start:end])
	}
	if op2, obj, err := codec.Decode(stream[ms.MessageSize : 2*ms.MessageSize]); err != nil || op2 != 5 || string(obj) != `{"x":1}` {
		t.Errorf("second frame: %d, %q, %v", op2, obj, err)
	}
}

// checkScanLimit asserts err is the Scanner's limit error.
func checkScanLimit(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, codec.ErrScanLimit) {
		t.Fatalf("err = %v, want ErrScanLimit", err)
	}
	checkMalformed(t, err, "", 1)
}

// TestScannerLimit feeds streams that never end their first object. The
// Scanner asks for more until it holds limit bytes, then fails with
// ErrScanLimit, however much more arrives.
func TestScannerLimit(t *testing.T) {
	t.Parallel()
	const limit = 300 // below the nesting bound, so "[[[[" hits the limit first
	const mib = 1 << 20
	for name, stream := range map[string][]byte{
		"string":     append([]byte(`1{"a":"`), bytes.Repeat([]byte("x"), 2*mib)...),
		"escapes":    append([]byte(`1{"a":"`), bytes.Repeat([]byte(`\"`), mib)...),
		"arrays":     append([]byte(`1{"a":`), bytes.Repeat([]byte("["), 2*mib)...),
		"objects":    append([]byte(`1`), bytes.Repeat([]byte(`{"a":`), mib)...),
		"whitespace": append([]byte(`1{`), bytes.Repeat([]byte(" "), 2*mib)...),
		"number":     append([]byte(`1{"a":1`), bytes.Repeat([]byte("0"), 2*mib)...),
		"key":        append([]byte(`1{"`), bytes.Repeat([]byte("k"), 2*mib)...),
	} {
		t.Run(name, func(t *testing.T) {
			// Byte by byte up to the limit: never an early error.
			s := codec.NewScanner(limit)
			for n := 0; n < limit; n++ {
				if _, _, _, done, err := s.Scan(stream[:n]); err != nil || done {
					t.Fatalf("Scan(%d bytes) = %v, %v before the limit", n, done, err)
				}
			}
			_, _, _, done, err := s.Scan(stream[:limit])
			if done {
				t.Fatal("done")
			}
			checkScanLimit(t, err)

			// Megabytes at once, fresh and resumed: the same error.
			_, _, _, _, err = codec.NewScanner(limit).Scan(stream)
			checkScanLimit(t, err)
			s = codec.NewScanner(limit)
			for n := 0; n < len(stream); n += 64 << 10 {
				if _, _, _, _, err = s.Scan(stream[:n]); err != nil {
					break
				}
			}
			checkScanLimit(t, err)
		})
	}
}

// TestScannerLimitLarge uses a real frame-size limit: strings, numbers and
// whitespace run into it, while nesting fails earlier, at depth 513, as
// Decode does.
func TestScannerLimitLarge(t *testing.T) {
	t.Parallel()
	const limit = 4096
	_, _, _, _, err := codec.NewScanner(limit).Scan(append([]byte(`1{"a":"`), bytes.Repeat([]byte("x"), 1<<20)...))
	checkScanLimit(t, err)

	for _, tc := range []struct {
		head, level string
		headDepth   int
	}{
		{`1{"a":`, "[", 1},
		{`1`, `{"a":`, 0},
	} {
		stream := []byte(tc.head + strings.Repeat(tc.level, 1<<20/len(tc.level)))
		_, _, _, _, err := codec.NewScanner(limit).Scan(stream)
		if errors.Is(err, codec.ErrScanLimit) {
			t.Errorf("%.10s...: %v, want the nesting error", stream, err)
		}
		me := checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
		if !strings.Contains(me.Error(), "nested too deeply") {
			t.Errorf("%.10s...: %v", stream, err)
		}
		// Not before depth 513: 512 levels are fine.
		depth512 := []byte(tc.head + strings.Repeat(tc.level, 512-tc.headDepth))
		if _, _, _, done, err := codec.NewScanner(limit).Scan(depth512); err != nil || done {
			t.Errorf("%.10s... 512 levels: %v, %v", depth512, done, err)
		}
		if _, _, _, _, err := codec.NewScanner(limit).Scan(append(depth512, tc.level[0])); err == nil {
			t.Errorf("%.10s... 513 levels: no error", depth512)
		}
	}

	// "{{" is malformed at once, not after the limit: an object needs a key.
	_, _, _, _, err = codec.NewScanner(limit).Scan(bytes.Repeat([]byte("{"), 1<<20))
	checkMalformed(t, err, "", 0) // no opcode before the first '{'
	_, _, _, _, err = codec.NewScanner(limit).Scan(append([]byte("1"), bytes.Repeat([]byte("{"), 1<<20)...))
	checkMalformed(t, err, "JSON malformed for opcode: 1", 1)
	if errors.Is(err, codec.ErrScanLimit) {
		t.Error(`"1{{" reported as a limit error`)
	}
}

// TestScannerNeverPastLimit puts what would end (or break) the object just
// past the limit: the Scanner must not see it.
func TestScannerNeverPastLimit(t *testing.T) {
	const limit = 64
	body := `1{"a":"` + strings.Repeat("x", limit-len(`1{"a":"`)-2) + `"}` // exactly limit bytes
	if len(body) != limit {
		t.Fatal(len(body))
	}
	// Ends at the last byte allowed: done.
	op, start, end, done, err := codec.NewScanner(limit).Scan([]byte(body + "   "))
	if err != nil || !done || op != 1 || start != 1 || end != limit {
		t.Fatalf("object of exactly limit bytes: %d, %d, %d, %v, %v", op, start, end, done, err)
	}
	// One byte longer: the closing brace is past the limit.
	long := `1{"a":"x` + body[len(`1{"a":"`):]
	_, _, _, done, err = codec.NewScanner(limit).Scan([]byte(long))
	if done {
		t.Fatal("the Scanner read past its limit")
	}
	checkScanLimit(t, err)
	// A byte that would be an error sits just past the limit: the limit
	// error, not a syntax error.
	for _, c := range []byte{0, '\n', 0xff, '}'} {
		poison := []byte(body[:limit-2] + "xx") // limit bytes, all inside the string
		poison = append(poison, c, '"', '}')
		_, _, _, _, err := codec.NewScanner(limit).Scan(poison)
		checkScanLimit(t, err)
	}
	// The same with an opcode that has not ended at the limit.
	_, _, _, _, err = codec.NewScanner(8).Scan([]byte("       1x{}"))
	if !errors.Is(err, codec.ErrScanLimit) {
		t.Errorf("opcode text past the limit: %v", err)
	}
}

func TestScannerMalformed(t *testing.T) {
	for _, tc := range []struct {
		stream string
		msg    string
		op     codec.Opcode
	}{
		{`abc{"a":1}`, "", 0},
		{`{"a":1}`, "", 0},
		{`2147483648{"a":1}`, "", 0},
		{`-2147483649{"a":1}`, "", 0},
		{`1 2{}`, "", 0},
		{`++1{}`, "", 0},
		{strings.Repeat("1", 25), "", 0}, // an opcode that long cannot be one
		{strings.Repeat(" ", 30) + "1{}", "", 0},
		{`1{"a" 1}`, "JSON malformed for opcode: 1", 1},
		{`-2{"message_size":01}`, "JSON malformed for opcode: -2", -2},
		{"-2{\"a\":\"\xff\"}", "JSON malformed for opcode: -2", -2},
		{"-2{\"a\":\"\x00\"}", "JSON malformed for opcode: -2", -2},
		{`-2{"a":tru}`, "JSON malformed for opcode: -2", -2},
		{`-2{"a":1]`, "JSON malformed for opcode: -2", -2},
	} {
		s := codec.NewScanner(1024)
		// Byte by byte: the error comes, and it is not ErrScanLimit.
		var err error
		for n := 0; n <= len(tc.stream) && err == nil; n++ {
			_, _, _, _, err = s.Scan([]byte(tc.stream[:n]))
		}
		if errors.Is(err, codec.ErrScanLimit) {
			t.Errorf("%q: %v", tc.stream, err)
		}
		me := checkMalformed(t, err, tc.msg, tc.op)
		if tc.msg == "" && !strings.HasPrefix(me.Message, "Opcode malformed") {
			t.Errorf("%q: Message = %q", tc.stream, me.Message)
		}
		// One-shot: the same error.
		_, _, _, _, err2 := codec.NewScanner(1024).Scan([]byte(tc.stream))
		if err2 == nil || err2.Error() != err.Error() {
			t.Errorf("%q: one-shot %v, byte by byte %v", tc.stream, err2, err)
		}
	}
}

func TestScannerReset(t *testing.T) {
	s := codec.NewScanner(32)
	if _, _, _, _, err := s.Scan([]byte("x{}")); err == nil {
		t.Fatal("want an error")
	}
	s.Reset()
	if op, start, end, done, err := s.Scan([]byte("-2{}")); err != nil || !done || op != -2 || start != 2 || end != 4 {
		t.Fatalf("after Reset: %d, %d, %d, %v, %v", op, start, end, done, err)
	}
	s.Reset()
	if _, _, _, done, err := s.Scan([]byte(`7{"a":`)); err != nil || done {
		t.Fatalf("after Reset: %v, %v", done, err)
	}
	// Reset keeps the limit.
	s.Reset()
	_, _, _, _, err := s.Scan(append([]byte(`1{"a":"`), bytes.Repeat([]byte("x"), 40)...))
	checkScanLimit(t, err)
}

func TestScannerZeroAllocs(t *testing.T) {
	frame := padTo(t, `-2{"message_size": 1024, "x": "h\u00e9llo ☃", "y": [1, {"z": null}]}`, 1024)
	s := codec.NewScanner(codec.MaxMessageSize)
	n := testing.AllocsPerRun(100, func() {
		s.Reset()
		for _, k := range []int{1, 10, 40, len(frame)} {
			if _, _, _, _, err := s.Scan(frame[:k]); err != nil {
				panic(err)
			}
		}
	})
	if n != 0 {
		t.Errorf("%v allocs/op, want 0", n)
	}
}
