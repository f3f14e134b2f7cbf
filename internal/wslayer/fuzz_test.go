// This file fuzzes a WebSocket layer: the upgrade request, and the frames
// after it, bytes in.

package wslayer

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzServerInput hands a server past the upgrade arbitrary bytes, cut
// in two: it never panics, consumes no more than it is given, hands over
// no message past the limit, and fails only with ErrProtocol, having sent
// a close frame. The seeds in testdata/fuzz run with go test.
func FuzzServerInput(f *testing.F) {
	var c Codec
	f.Add(c.AppendFrame(nil, 0x1, []byte(`7{"a":1}`), true, [4]byte{1, 2, 3, 4}), 3)
	f.Add(append(c.AppendFrame(nil, 0x9, []byte("hi"), true, [4]byte{}), 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8), 0)
	f.Add([]byte{0x01, 0x83, 0, 0, 0, 0, 'a', 'b', 'c', 0x80, 0x81, 0, 0, 0, 0, 'd'}, 9)
	f.Add([]byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0}, 5)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		const limit = 256
		_, s := pairUp(t, limit)
		cut = min(max(cut, 0), len(in))
		var left []byte
		for _, part := range [][]byte{in[:cut], in[cut:]} {
			left = append(left, part...)
			n, ready, err := s.l.Input(left, func(m []byte) {
				if len(m) > limit {
					t.Fatalf("a message of %d bytes, over the limit of %d", len(m), limit)
				}
			})
			if n < 0 || n > len(left) || !ready {
				t.Fatalf("consumed %d of %d, ready %v", n, len(left), ready)
			}
			left = left[n:]
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v does not wrap ErrProtocol", err)
				}
				if !bytes.Contains(s.out, []byte{0x88, 2}) {
					t.Fatalf("failed without a close frame: %v", err)
				}
				return
			}
		}
	})
}

// FuzzHandshake hands a fresh server arbitrary bytes as the upgrade
// request: it never panics, and either waits for more (within the header
// cap), upgrades, or refuses with ErrHandshake having answered with an
// HTTP status.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte("GET /rpc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	f.Add([]byte("GET /other HTTP/1.1\r\n\r\n"))
	f.Add([]byte("\x16\x03\x01 hello\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := newEnd(false, 1024)
		s.l.cfg.MaxHeader = 512
		s.l.cfg.Timeout = time.Minute
		if err := s.l.Start(); err != nil {
			t.Fatal(err)
		}
		defer s.l.Stop(nil, false)
		n, ready, err := s.l.Input(in, func([]byte) {})
		switch {
		case n < 0 || n > len(in):
			t.Fatalf("consumed %d of %d", n, len(in))
		case err != nil:
			if !errors.Is(err, ErrHandshake) || !bytes.HasPrefix(s.out, []byte("HTTP/1.1 ")) {
				t.Fatalf("refused with %v, answered %.40q", err, s.out)
			}
		case ready:
			if !bytes.HasPrefix(s.out, []byte("HTTP/1.1 101 ")) {
				t.Fatalf("upgraded, answered %.40q", s.out)
			}
		case len(in) > 512:
			t.Fatalf("waits for more past the header cap (%d bytes)", len(in))
		}
	})
}
