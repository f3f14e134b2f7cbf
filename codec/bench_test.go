package codec_test

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
)

// The benchmarks put this package next to the same work done with
// encoding/json, as sub-benchmarks named size=N/impl=X, so that
//
//	benchstat -col /impl bench.txt
//
// shows the implementations side by side for each frame size.

var benchSizes = []int{256, 1024}

// benchArgs is a typical call payload: a few scalars, a list, some text.
type benchArgs struct {
	ID     uint64   `json:"id"`
	Method string   `json:"method"`
	Tags   []string `json:"tags"`
	Score  float64  `json:"score"`
	Active bool     `json:"active"`
	Text   string   `json:"text"`
}

// benchPayload fills about two thirds of a frame of size bytes.
func benchPayload(size int) *benchArgs {
	v := &benchArgs{
		ID:     1234567,
		Method: "update_profile",
		Tags:   []string{"alpha", "beta", "héllo ☃"},
		Score:  98.625,
		Active: true,
	}
	obj, _ := codec.Marshal(v)
	v.Text = strings.Repeat("lorem ipsum ", (size*2/3-len(obj))/12+1)[:size*2/3-len(obj)]
	return v
}

// benchFrame returns the frame and the object of benchPayload(size).
func benchFrame(b *testing.B, size int) (frame, obj []byte) {
	b.Helper()
	v := benchPayload(size)
	obj, err := codec.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	frame, err = codec.Append(nil, size, 7, v)
	if err != nil {
		b.Fatal(err)
	}
	return frame, obj
}

var (
	sinkOp  int64
	sinkObj []byte
	sinkErr error
)

var (
	errStdNoJSON    = errors.New("JSON data not found")
	errStdMalformed = errors.New("JSON malformed")
	errStdNotObject = errors.New("not an object")
	errStdTooLarge  = errors.New("frame too large")
)

// stdDecode is Decode's work done with encoding/json, in its cheapest form:
// find the first '{', parse the opcode with strconv, validate the trimmed
// rest with json.Valid (which, unlike Decode, does not check UTF-8).
func stdDecode(frame []byte) (int64, []byte, error) {
	brace := bytes.IndexByte(frame, '{')
	if brace < 0 {
		return 0, nil, errStdNoJSON
	}
	op, err := strconv.ParseInt(string(bytes.TrimSpace(frame[:brace])), 10, 32)
	if err != nil {
		return 0, nil, err
	}
	obj := bytes.TrimRight(frame[brace:], " \t\r\n")
	if !stdjson.Valid(obj) {
		return op, nil, errStdMalformed
	}
	return op, obj, nil
}

// spaces pads the encoding/json frames as cheaply as possible.
var spaces = bytes.Repeat([]byte{' '}, 4096)

// stdFrame appends op, the compact object c and the padding.
func stdFrame(dst []byte, size int, op int64, c []byte) ([]byte, error) {
	if len(c) == 0 || c[0] != '{' {
		return dst, errStdNotObject
	}
	n := len(dst)
	dst = strconv.AppendInt(dst, op, 10)
	if len(dst)-n+len(c) > size {
		return dst[:n], errStdTooLarge
	}
	dst = append(dst, c...)
	return append(dst, spaces[:size-(len(dst)-n)]...), nil
}

// stdAppendRaw is AppendRaw's work done with encoding/json: validate and
// copy the object with json.Compact into a reused buffer, then frame it.
func stdAppendRaw(dst []byte, cbuf *bytes.Buffer, size int, op int64, obj []byte) ([]byte, error) {
	cbuf.Reset()
	if err := stdjson.Compact(cbuf, obj); err != nil {
		return dst, err
	}
	return stdFrame(dst, size, op, cbuf.Bytes())
}

// stdAppend is Append's work done with encoding/json.
func stdAppend(dst []byte, size int, op int64, v any) ([]byte, error) {
	c, err := stdjson.Marshal(v)
	if err != nil {
		return dst, err
	}
	return stdFrame(dst, size, op, c)
}

// TestBenchEquivalents checks that the encoding/json stand-ins used by the
// benchmarks do the same job as the codec on the benchmark data.
func TestBenchEquivalents(t *testing.T) {
	for _, size := range benchSizes {
		v := benchPayload(size)
		frame, err := codec.Append(nil, size, 7, v)
		if err != nil {
			t.Fatal(err)
		}
		obj, _ := codec.Marshal(v)
		if l := len(bytes.TrimRight(frame, " ")); l < size/2 || l > size {
			t.Errorf("size %d: payload of %d bytes", size, l)
		}
		op, got, err := stdDecode(frame)
		if err != nil || op != 7 || !bytes.Equal(got, obj) {
			t.Errorf("stdDecode = %d, %q, %v", op, got, err)
		}
		var cbuf bytes.Buffer
		raw, err := stdAppendRaw(nil, &cbuf, size, 7, obj)
		if err != nil || !bytes.Equal(raw, frame) {
			t.Errorf("stdAppendRaw = %q, %v", raw, err)
		}
		enc, err := stdAppend(nil, size, 7, v)
		if err != nil || !sameJSON(t, bytes.TrimRight(enc[1:], " "), obj) || len(enc) != size {
			t.Errorf("stdAppend = %q, %v", enc, err)
		}
		for _, bad := range []string{`7{"a":`, `7[1]`, `x{}`, `7{"a":1}}`} {
			if _, _, err := stdDecode(padTo(t, bad, size)); err == nil {
				t.Errorf("stdDecode(%q) accepted", bad)
			}
		}
		for _, bad := range []string{`{"a":`, `[1]`, `{"a":1}x`} {
			if _, err := stdAppendRaw(nil, &cbuf, size, 7, []byte(bad)); err == nil {
				t.Errorf("stdAppendRaw(%q) accepted", bad)
			}
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range benchSizes {
		frame, _ := benchFrame(b, size)
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("impl=simplerpc", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					op, obj, err := codec.Decode(frame)
					sinkOp, sinkObj, sinkErr = int64(op), obj, err
				}
				if sinkErr != nil {
					b.Fatal(sinkErr)
				}
			})
			b.Run("impl=encoding_json", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					sinkOp, sinkObj, sinkErr = stdDecode(frame)
				}
				if sinkErr != nil {
					b.Fatal(sinkErr)
				}
			})
		})
	}
}

func BenchmarkAppendRaw(b *testing.B) {
	for _, size := range benchSizes {
		_, obj := benchFrame(b, size)
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("impl=simplerpc", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				buf := make([]byte, 0, size)
				var err error
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					buf, err = codec.AppendRaw(buf[:0], size, 7, obj)
				}
				if err != nil || len(buf) != size {
					b.Fatal(err)
				}
			})
			b.Run("impl=encoding_json", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				buf := make([]byte, 0, size)
				var cbuf bytes.Buffer
				var err error
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					buf, err = stdAppendRaw(buf[:0], &cbuf, size, 7, obj)
				}
				if err != nil || len(buf) != size {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range benchSizes {
		v := benchPayload(size)
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("impl=simplerpc", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				buf := make([]byte, 0, size)
				var err error
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					buf, err = codec.Append(buf[:0], size, 7, v)
				}
				if err != nil || len(buf) != size {
					b.Fatal(err)
				}
			})
			b.Run("impl=encoding_json", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				buf := make([]byte, 0, size)
				var err error
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					buf, err = stdAppend(buf[:0], size, 7, v)
				}
				if err != nil || len(buf) != size {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	for _, size := range benchSizes {
		_, obj := benchFrame(b, size)
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("impl=simplerpc", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var v benchArgs
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					sinkErr = codec.Unmarshal(obj, &v)
				}
				if sinkErr != nil {
					b.Fatal(sinkErr)
				}
			})
			b.Run("impl=encoding_json", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				var v benchArgs
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					sinkErr = stdjson.Unmarshal(obj, &v)
				}
				if sinkErr != nil {
					b.Fatal(sinkErr)
				}
			})
		})
	}
}

// BenchmarkScanner reads a first frame of unknown size, as a client does
// on connect. It has no encoding/json counterpart.
func BenchmarkScanner(b *testing.B) {
	for _, size := range benchSizes {
		frame, _ := benchFrame(b, size)
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.Run("impl=simplerpc", func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				s := codec.NewScanner(codec.MaxMessageSize)
				var done bool
				var err error
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					s.Reset()
					_, _, _, done, err = s.Scan(frame)
				}
				if err != nil || !done {
					b.Fatal(err)
				}
			})
		})
	}
}

var sinkCall codec.Call

// callFrames returns, for frames of size bytes, a request and a reply
// carrying benchPayload(size), each in simplerpc's own form (read in one
// pass) and spaced as another peer may write it (read by Decode and
// go-json).
func callFrames(b *testing.B, size int) map[string][]byte {
	b.Helper()
	data, err := codec.Marshal(benchPayload(size))
	if err != nil {
		b.Fatal(err)
	}
	frames := make(map[string][]byte)
	for name, f := range map[string]struct {
		op  codec.Opcode
		obj []byte
	}{
		"op=request/form=own":    {codec.OpRequest, codec.AppendRequest(nil, 123456, 7, data)},
		"op=reply/form=own":      {codec.OpReply, codec.AppendReply(nil, 123456, data)},
		"op=request/form=spaced": {codec.OpRequest, fmt.Appendf(nil, `{"id": 123456, "op": 7, "data": %s}`, data)},
		"op=reply/form=spaced":   {codec.OpReply, fmt.Appendf(nil, `{"id": 123456, "data": %s}`, data)},
	} {
		if frames[name], err = codec.AppendValidated(nil, size, f.op, f.obj); err != nil {
			b.Fatal(err)
		}
	}
	return frames
}

// BenchmarkDecodeFrame reads call frames with DecodeFrame, and an ordinary
// frame (op=7), whose cost must stay Decode's.
func BenchmarkDecodeFrame(b *testing.B) {
	const size = 1024
	frames := callFrames(b, size)
	frames["op=7"], _ = benchFrame(b, size)
	b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
		for _, name := range []string{"op=request/form=own", "op=request/form=spaced", "op=reply/form=own", "op=reply/form=spaced", "op=7"} {
			frame := frames[name]
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					op, obj, call, err := codec.DecodeFrame(frame)
					sinkOp, sinkObj, sinkCall, sinkErr = int64(op), obj, call, err
				}
				if sinkErr != nil {
					b.Fatal(sinkErr)
				}
			})
		}
	})
}

// BenchmarkAppendRequest builds a request's and a reply's envelope and
// frame into reused buffers, as a caller and a callee do.
func BenchmarkAppendRequest(b *testing.B) {
	const size = 1024
	data, err := codec.Marshal(benchPayload(size))
	if err != nil {
		b.Fatal(err)
	}
	env := make([]byte, 0, size)
	buf := make([]byte, 0, size)
	b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
		for _, op := range []codec.Opcode{codec.OpRequest, codec.OpReply} {
			b.Run("op="+op.String()[:strings.IndexByte(op.String(), '(')], func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				defer codec.CPUPerOp(b)()
				for b.Loop() {
					if op == codec.OpRequest {
						env = codec.AppendRequest(env[:0], 123456, 7, data)
					} else {
						env = codec.AppendReply(env[:0], 123456, data)
					}
					buf, sinkErr = codec.AppendValidated(buf[:0], size, op, env)
				}
				if sinkErr != nil {
					b.Fatal(sinkErr)
				}
			})
		}
	})
}

// echoObject is the object of benchmarks/internal/wire's echo frame, the
// one the echo comparison sends: a small application message of about
// forty tokens.
const echoObject = `{"t":"%019d","user":"bench-user-%04d","seq":%d,` +
	`"tags":["alpha","beta","gamma"],"pos":{"x":12.5,"y":-3.25,"z":0},"ok":true,"note":"%s"}`

// echoFrames returns n echo frames of 256 bytes: one, or n that differ in
// their digits and in the length of their note, as a real peer's do, so
// that the branches the validator takes are not the same every time.
func echoFrames(b *testing.B, n int) [][]byte {
	b.Helper()
	frames := make([][]byte, n)
	for i := range frames {
		obj := fmt.Sprintf(echoObject, int64(i)*7919*1e9, i%10000, 100000+i*37, strings.Repeat("x", 30+i*13%20))
		f, err := codec.AppendRaw(nil, 256, 0, []byte(obj))
		if err != nil {
			b.Fatal(err)
		}
		frames[i] = f
	}
	return frames
}

// BenchmarkEcho is the codec's part of an echoed frame: DecodeFrame, then
// AppendValidated of the object into a reused buffer, as the engine does
// for a handler that sends back what it was given.
func BenchmarkEcho(b *testing.B) {
	for _, n := range []int{1, 1024} {
		frames := echoFrames(b, n)
		b.Run(fmt.Sprintf("frames=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(256)
			out := make([]byte, 0, 256)
			defer codec.CPUPerOp(b)()
			i := 0
			for b.Loop() {
				op, obj, _, err := codec.DecodeFrame(frames[i])
				if err == nil {
					out, err = codec.AppendValidated(out[:0], 256, op, obj)
				}
				if err != nil {
					b.Fatal(err)
				}
				if i++; i == n {
					i = 0
				}
			}
			sinkObj = out
		})
	}
}
