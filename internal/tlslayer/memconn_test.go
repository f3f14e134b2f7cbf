// This file tests the memConn's record boundaries.

package tlslayer

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestMemConnRecordBoundaries lends a stream of TLS records to a memConn in
// random pieces, as gnet's reads may cut it, and reads it back with random
// buffer sizes, as crypto/tls does: every byte comes back in order, and no
// read goes past the end of a record.
func TestMemConnRecordBoundaries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var stream []byte
		var ends []int // offsets where a record ends
		for range 1 + rng.IntN(20) {
			n := rng.IntN(300)
			if rng.IntN(10) == 0 {
				n = 0 // an empty record
			}
			stream = append(stream, 23, 3, 3, byte(n>>8), byte(n))
			for range n {
				stream = append(stream, byte(rng.IntN(256)))
			}
			ends = append(ends, len(stream))
		}
		m := &memConn{}
		var got []byte
		rest := stream
		for len(rest) > 0 {
			piece := rest[:min(len(rest), 1+rng.IntN(400))]
			rest = rest[len(piece):]
			m.in = piece
			for {
				p := make([]byte, 1+rng.IntN(600))
				n, err := m.Read(p)
				if err == errNoData {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				start, end := len(got), len(got)+n
				for _, e := range ends {
					if start < e && end > e {
						t.Fatalf("round %d: read [%d, %d) crosses the record end at %d", round, start, end, e)
					}
				}
				got = append(got, p[:n]...)
			}
		}
		if !bytes.Equal(got, stream) {
			t.Fatalf("round %d: %d bytes back of %d, or out of order", round, len(got), len(stream))
		}
		if m.hn != 0 {
			t.Fatalf("round %d: the parser ends inside a record (%d header bytes)", round, m.hn)
		}
	}
}
