//go:build unix

// This file tests the hello and the batches over a Unix socket: the
// version both sides check.

package handoverwire

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair returns the two ends of a Unix stream socket.
func pair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "s"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestHello(t *testing.T) {
	a, b := pair(t)
	if err := WriteAck(a, Hello); err != nil {
		t.Fatal(err)
	}
	n, err := ReadAck(b)
	if err != nil || CheckHello(n) != nil {
		t.Fatalf("hello %#x: %v %v", n, err, CheckHello(n))
	}
	for _, n := range []uint32{0xffff<<16 | (Version + 1), 1<<32 - 1, 3} {
		if err := CheckHello(n); !errors.Is(err, ErrWire) {
			t.Errorf("hello %#x accepted: %v", n, err)
		}
	}
}

func TestBatchVersion(t *testing.T) {
	a, b := pair(t)
	if err := WriteBatch(a, &Batch{Next: 7, End: true}); err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	defer r.Close()
	got, err := r.Next()
	if err != nil || got.Next != 7 || !got.End || got.V != Version {
		t.Fatalf("batch %+v: %v", got, err)
	}
	// A batch of another version, written by hand.
	js, _ := json.Marshal(map[string]any{"v": Version + 1, "next": 8, "end": true})
	if _, err := a.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(js))), js...)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrWire) {
		t.Fatalf("a batch of another version: %v", err)
	}
}

// TestNextAfterDeadline: a read deadline that passes while Next waits
// (Adopt's context ending) is an error from Next, with a batch begun or
// not, not a panic: a read that fails so returns -1 bytes.
func TestNextAfterDeadline(t *testing.T) {
	for _, begun := range []bool{false, true} {
		a, b := pair(t)
		if begun {
			if _, err := a.Write([]byte{0, 0, 1, 0, '{'}); err != nil { // a 256-byte batch, its first byte
				t.Fatal(err)
			}
		}
		if err := b.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		r := NewReader(b)
		if _, err := r.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("begun %v: %v, want the deadline", begun, err)
		}
		r.Close()
	}
}

// TestBatchRuns: a run of frames is held once in a batch however many
// connections get it, and a batch whose connections get runs it does not
// hold, or none, or an empty run, is malformed.
func TestBatchRuns(t *testing.T) {
	a, b := pair(t)
	want := &Batch{Next: 9, Frames: [][]byte{[]byte("1{}"), []byte("2{}")}, To: []To{{ID: 3, Frames: []int{0, 1}}, {ID: 4, Frames: []int{1}}}}
	if err := WriteBatch(a, want); err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	defer r.Close()
	got, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	gotJS, _ := json.Marshal(got)
	wantJS, _ := json.Marshal(want)
	if string(gotJS) != string(wantJS) {
		t.Fatalf("read %s, wrote %s", gotJS, wantJS)
	}
	pack := func(v ...byte) string { return `"` + base64.StdEncoding.EncodeToString(v) + `"` }
	for _, js := range []string{
		`{"v":3,"next":1,"frames":["MXt9"],"to":` + pack(3, 1, 1) + `}`,    // a run it does not hold
		`{"v":3,"next":1,"frames":["MXt9"],"to":` + pack(3, 0) + `}`,       // no run
		`{"v":3,"next":1,"frames":[""],"to":` + pack(3, 1, 0) + `}`,        // an empty run
		`{"v":3,"next":1,"to":` + pack(3, 1, 0) + `}`,                      // no runs at all
		`{"v":3,"next":1,"frames":["MXt9"],"to":` + pack(3, 2, 0) + `}`,    // cut short
		`{"v":3,"next":1,"frames":["MXt9"],"to":` + pack(3, 1, 0x80) + `}`, // a varint cut short
		`{"v":3,"next":1,"frames":["MXt9"],"to":[{"id":3,"frames":[0]}]}`,  // not packed
	} {
		if _, err := parseBatch([]byte(js)); !errors.Is(err, ErrWire) {
			t.Errorf("%s: %v, want ErrWire", js, err)
		}
	}
	if _, err := json.Marshal(&Batch{Frames: [][]byte{{1}}, To: Tos{{ID: 3, Frames: []int{-1}}}}); err == nil {
		t.Error("a negative run index was packed")
	}
	// The packed form is what travels, a few bytes per entry.
	js, _ := json.Marshal(&Batch{To: Tos{{ID: 3, Frames: []int{0, 1}}, {ID: 4, Frames: []int{1}}}})
	if want := `"to":` + pack(3, 2, 0, 1, 4, 1, 1); !strings.Contains(string(js), want) {
		t.Errorf("%s, want %s in it", js, want)
	}
}
