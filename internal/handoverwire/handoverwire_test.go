//go:build unix

// This file tests the hello and the batches over a Unix socket: the
// version both sides check.

package handoverwire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
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
	for _, n := range []int{0xffff<<16 | (Version + 1), 1<<32 - 1, 3} {
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
