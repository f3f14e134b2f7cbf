package codec_test

import (
	"bytes"
	"context"
	stdjson "encoding/json"
	"errors"
	"os/exec"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
)

// padTo returns s padded with ASCII spaces to size bytes. s must fit.
func padTo(t testing.TB, s string, size int) []byte {
	t.Helper()
	if len(s) > size {
		t.Fatalf("padTo: %d bytes do not fit in %d", len(s), size)
	}
	b := make([]byte, size)
	copy(b, s)
	for i := len(s); i < size; i++ {
		b[i] = ' '
	}
	return b
}

// stdAny decodes b with encoding/json, an implementation independent of the
// codec's go-json, and fails the test if it does not parse.
func stdAny(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := stdjson.Unmarshal(b, &v); err != nil {
		t.Fatalf("encoding/json cannot parse %q: %v", b, err)
	}
	return v
}

// checkMalformed asserts that err is a *codec.MalformedError matched by
// codec.ErrMalformed, with the wire reason MalformedPayload. wantMsg, if not
// empty, is the exact message; wantOp is the opcode it must carry.
func checkMalformed(t testing.TB, err error, wantMsg string, wantOp codec.Opcode) *codec.MalformedError {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error, want a malformed frame error")
	}
	if !errors.Is(err, codec.ErrMalformed) {
		t.Errorf("errors.Is(%v, ErrMalformed) = false", err)
	}
	var me *codec.MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("errors.As(%T, *MalformedError) = false", err)
	}
	if got := me.Reason(); got != "MalformedPayload" {
		t.Errorf("Reason() = %q, want MalformedPayload", got)
	}
	if me.Message == "" {
		t.Error("Message is empty")
	}
	if wantMsg != "" && me.Message != wantMsg {
		t.Errorf("Message = %q, want %q", me.Message, wantMsg)
	}
	if me.Op != wantOp {
		t.Errorf("Op = %d, want %d", me.Op, wantOp)
	}
	if want := "codec: malformed frame: " + me.Message; len(me.Error()) < len(want) || me.Error()[:len(want)] != want {
		t.Errorf("Error() = %q, want prefix %q", me.Error(), want)
	}
	return me
}

// pyReader is the original Python simplerpc's reading of a frame, as
// PROTOCOL.md §1 describes it: the opcode is int() of the text up to the
// first '{', the data is json.loads of the rest with whitespace stripped. It
// reads whole frames of argv[1] bytes from stdin and prints one JSON line per
// frame. For an accepted frame it also reports whether the bytes after the
// object are only ASCII spaces (the padding PROTOCOL.md §1 requires of
// writers).
const pyReader = `
import json, sys

size = int(sys.argv[1])
data = sys.stdin.buffer.read()
if len(data) % size:
    sys.exit("stream of %d bytes is not made of %d-byte frames" % (len(data), size))
for i in range(0, len(data), size):
    raw = data[i:i + size]
    res = {"ok": False}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        res["kind"], res["error"] = "utf8", str(e)
    else:
        idx = text.find("{")
        if idx < 0:
            res["kind"] = "nojson"
        else:
            try:
                op = int(text[:idx])
            except ValueError as e:
                res["kind"], res["error"] = "opcode", str(e)
            else:
                rest = text[idx:]
                try:
                    obj = json.loads(rest.strip())
                except ValueError as e:
                    res["kind"], res["error"] = "json", str(e)
                else:
                    _, end = json.JSONDecoder().raw_decode(rest)
                    res = {"ok": True, "op": op, "data": obj,
                           "spaces_only": rest[end:].strip(" ") == ""}
    try:
        line = json.dumps(res, ensure_ascii=True, allow_nan=False)
    except ValueError:
        # NaN or Infinity, which JSON cannot carry back.
        res["data"], res["non_finite"] = None, True
        line = json.dumps(res, ensure_ascii=True)
    print(line)
`

// pyResult is one line of pyReader's output.
type pyResult struct {
	OK         bool               `json:"ok"`
	Kind       string             `json:"kind"`
	Error      string             `json:"error"`
	Op         int64              `json:"op"`
	Data       stdjson.RawMessage `json:"data"`
	SpacesOnly bool               `json:"spaces_only"`
}

// runPython feeds frames, each exactly size bytes, to pyReader and returns
// its reading of each. python3 is required: without it the test fails.
func runPython(t testing.TB, size int, frames [][]byte) []pyResult {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required to check the original's reading of our frames: %v", err)
	}
	var in bytes.Buffer
	for i, f := range frames {
		if len(f) != size {
			t.Fatalf("frame %d is %d bytes, want %d", i, len(f), size)
		}
		in.Write(f)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", pyReader, strconv.Itoa(size))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.Bytes())
	}
	dec := stdjson.NewDecoder(bytes.NewReader(out))
	res := make([]pyResult, 0, len(frames))
	for dec.More() {
		var r pyResult
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("python3 output: %v\n%s", err, out)
		}
		res = append(res, r)
	}
	if len(res) != len(frames) {
		t.Fatalf("python3 read %d frames, want %d", len(res), len(frames))
	}
	return res
}

// sameJSON reports whether a and b, decoded with encoding/json, are equal.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	return reflect.DeepEqual(stdAny(t, a), stdAny(t, b))
}
