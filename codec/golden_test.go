package codec_test

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/simplerpc/simplerpc/codec"
)

// goldenSize is the message size of PROTOCOL.md §1's vectors.
const goldenSize = 256

type nestedVector struct {
	Nested struct {
		A []any `json:"a"`
	} `json:"nested"`
	U string `json:"u"`
}

// goldenVectors are the frames of PROTOCOL.md §1: original is what the
// original Python simplerpc writes (json.dumps separators and \uXXXX
// escapes), ours is what our encoder writes for the same data (compact JSON,
// raw UTF-8). Both are shown before padding.
var goldenVectors = []struct {
	name     string
	op       codec.Opcode
	original string
	ours     string
	encode   func(dst []byte) ([]byte, error)
}{
	{
		name:     "data",
		op:       0,
		original: `0{"some_data": 123}`,
		ours:     `0{"some_data":123}`,
		encode: func(dst []byte) ([]byte, error) {
			return codec.Append(dst, goldenSize, 0, map[string]any{"some_data": 123})
		},
	},
	{
		name:     "broadcast",
		op:       1,
		original: `1{"some_data": "this is sent to every connection"}`,
		ours:     `1{"some_data":"this is sent to every connection"}`,
		encode: func(dst []byte) ([]byte, error) {
			v := struct {
				SomeData string `json:"some_data"`
			}{"this is sent to every connection"}
			return codec.Append(dst, goldenSize, 1, &v)
		},
	},
	{
		name:     "failure",
		op:       codec.OpFailure,
		original: `-1{"reason": "ArgumentMissing", "message": "Expected argument 'argname' in opcode 0"}`,
		ours:     `-1{"reason":"ArgumentMissing","message":"Expected argument 'argname' in opcode 0"}`,
		encode: func(dst []byte) ([]byte, error) {
			return codec.AppendFailure(dst, goldenSize, "ArgumentMissing", "Expected argument 'argname' in opcode 0")
		},
	},
	{
		name:     "message_size",
		op:       codec.OpMessageSize,
		original: `-2{"message_size": 256}`,
		ours:     `-2{"message_size":256}`,
		encode: func(dst []byte) ([]byte, error) {
			return codec.AppendMessageSize(dst, goldenSize, 256)
		},
	},
	{
		name:     "empty",
		op:       42,
		original: `42{}`,
		ours:     `42{}`,
		encode: func(dst []byte) ([]byte, error) {
			return codec.Append(dst, goldenSize, 42, struct{}{})
		},
	},
	{
		name:     "nested_non_ascii",
		op:       7,
		original: `7{"nested": {"a": [1, 2.5, null, true, "x"]}, "u": "h\u00e9llo \u2603"}`,
		ours:     `7{"nested":{"a":[1,2.5,null,true,"x"]},"u":"héllo ☃"}`,
		encode: func(dst []byte) ([]byte, error) {
			var v nestedVector
			v.Nested.A = []any{1, 2.5, nil, true, "x"}
			v.U = "héllo ☃"
			return codec.Append(dst, goldenSize, 7, &v)
		},
	},
}

// objectOf returns the JSON object of an unpadded frame text.
func objectOf(frame string) string { return frame[strings.IndexByte(frame, '{'):] }

// TestGoldenDecodeOriginal decodes the original's form of every vector.
func TestGoldenDecodeOriginal(t *testing.T) {
	for _, v := range goldenVectors {
		t.Run(v.name, func(t *testing.T) {
			frame := padTo(t, v.original, goldenSize)
			op, obj, err := codec.Decode(frame)
			if err != nil {
				t.Fatalf("Decode(%q): %v", v.original, err)
			}
			if op != v.op {
				t.Errorf("op = %d, want %d", op, v.op)
			}
			if want := objectOf(v.original); string(obj) != want {
				t.Errorf("obj = %q, want %q", obj, want)
			}
			// obj is borrowed: a sub-slice of frame, not a copy.
			if at := strings.IndexByte(v.original, '{'); unsafe.SliceData(obj) != &frame[at] {
				t.Error("obj is not a sub-slice of frame")
			}
			// The escaped, spaced form means the same as ours.
			if !sameJSON(t, obj, []byte(objectOf(v.ours))) {
				t.Errorf("%s does not mean the same as %s", obj, objectOf(v.ours))
			}
			var m map[string]any
			if err := codec.Unmarshal(obj, &m); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(m, stdAny(t, obj)) {
				t.Errorf("go-json reads %#v, encoding/json reads %#v", m, stdAny(t, obj))
			}
		})
	}
}

// TestGoldenEncode checks our encoding of every vector byte for byte.
func TestGoldenEncode(t *testing.T) {
	for _, v := range goldenVectors {
		t.Run(v.name, func(t *testing.T) {
			want := padTo(t, v.ours, goldenSize)
			got, err := v.encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != goldenSize {
				t.Errorf("len = %d, want %d", len(got), goldenSize)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("frame =\n%q\nwant\n%q", got, want)
			}

			// Append appends: the bytes already in dst stay in place.
			dst := append(make([]byte, 0, 8), "prev"...)
			got, err = v.encode(dst)
			if err != nil {
				t.Fatal(err)
			}
			if string(got[:4]) != "prev" || !bytes.Equal(got[4:], want) {
				t.Errorf("appended frame = %q", got)
			}

			// Into a reused buffer with room: same bytes, same array.
			buf := make([]byte, 0, 2*goldenSize)
			got, err = v.encode(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || unsafe.SliceData(got) != unsafe.SliceData(buf) {
				t.Error("encoding into a buffer with room did not reuse it")
			}

			op, obj, err := codec.Decode(got)
			if err != nil || op != v.op || string(obj) != objectOf(v.ours) {
				t.Errorf("Decode(ours) = %d, %q, %v", op, obj, err)
			}
		})
	}
}

// TestGoldenAppendRawOriginal checks that AppendRaw copies an object
// verbatim, so the original's frames can be reproduced byte for byte.
func TestGoldenAppendRawOriginal(t *testing.T) {
	for _, v := range goldenVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := codec.AppendRaw(nil, goldenSize, v.op, []byte(objectOf(v.original)))
			if err != nil {
				t.Fatal(err)
			}
			if want := padTo(t, v.original, goldenSize); !bytes.Equal(got, want) {
				t.Errorf("frame =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestGoldenDefaultSize checks the size announcement at the original's
// default message size.
func TestGoldenDefaultSize(t *testing.T) {
	got, err := codec.AppendMessageSize(nil, codec.DefaultMessageSize, codec.DefaultMessageSize)
	if err != nil {
		t.Fatal(err)
	}
	if want := padTo(t, `-2{"message_size":1024}`, 1024); !bytes.Equal(got, want) {
		t.Errorf("frame = %q", bytes.TrimRight(got, " "))
	}
	if codec.DefaultMessageSize != 1024 {
		t.Errorf("DefaultMessageSize = %d, want the original's 1024", codec.DefaultMessageSize)
	}
}

// extraFrames are more of our frames for the original's reader: every
// protocol opcode, the int32 extremes, escapes and non-ASCII text.
func extraFrames(t *testing.T) (frames [][]byte, objs [][]byte, ops []codec.Opcode) {
	t.Helper()
	add := func(op codec.Opcode, v any) {
		f, err := codec.Append(nil, goldenSize, op, v)
		if err != nil {
			t.Fatalf("Append(%d, %#v): %v", op, v, err)
		}
		frames = append(frames, f)
		obj, err := codec.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
		ops = append(ops, op)
	}
	add(math.MaxInt32, map[string]any{"max": true})
	add(math.MinInt32, map[string]any{"min": false})
	add(codec.OpRequest, map[string]any{"id": 1, "op": 3, "data": map[string]any{"x": []int{1, 2}}})
	add(codec.OpReply, map[string]any{"id": uint64(1) << 53, "data": map[string]any{}})
	add(codec.OpPing, map[string]any{"t": int64(1234567890123)})
	add(5, map[string]any{
		"ctl":    "\x00\x01\x1f\t\n\r\"\\/",
		"html":   "<a href='x'>&amp;</a>",
		"astral": "😀 𝄞",
		"lsep":   "a\u2028b\u2029c",
		"bom":    "\ufeff\ufffd",
		"é":      []any{0.0, 1e300, 5e-324, -1.5e-7, 123456789},
	})
	f, err := codec.AppendFailureOp(nil, goldenSize, codec.OpReplyFailure, ptr(uint64(99)), "ArgumentTypeError", "bad ☃")
	if err != nil {
		t.Fatal(err)
	}
	frames = append(frames, f)
	objs = append(objs, []byte(`{"id":99,"reason":"ArgumentTypeError","message":"bad ☃"}`))
	ops = append(ops, codec.OpReplyFailure)
	return frames, objs, ops
}

func ptr[T any](v T) *T { return &v }

// TestOriginalReadsOurFrames feeds our frames to python3 running the
// original's reading algorithm and checks it reads back what we encoded.
func TestOriginalReadsOurFrames(t *testing.T) {
	t.Parallel()
	var frames, objs [][]byte
	var ops []codec.Opcode
	for _, v := range goldenVectors {
		f, err := v.encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
		objs = append(objs, []byte(objectOf(v.ours)))
		ops = append(ops, v.op)
	}
	f, o, p := extraFrames(t)
	frames, objs, ops = append(frames, f...), append(objs, o...), append(ops, p...)

	res := runPython(t, goldenSize, frames)
	for i, r := range res {
		if !r.OK {
			t.Errorf("frame %q: the original fails with %s: %s", bytes.TrimRight(frames[i], " "), r.Kind, r.Error)
			continue
		}
		if r.Op != int64(ops[i]) {
			t.Errorf("frame %d: the original reads opcode %d, want %d", i, r.Op, ops[i])
		}
		if !reflect.DeepEqual(stdAny(t, r.Data), stdAny(t, objs[i])) {
			t.Errorf("frame %d: the original reads %s, want %s", i, r.Data, objs[i])
		}
		if !r.SpacesOnly {
			t.Errorf("frame %d: padding is not only ASCII spaces", i)
		}
	}
}
