// This file fuzzes a TLS layer past its handshake, bytes in.

package tlslayer

import (
	"errors"
	"testing"
)

// FuzzInput hands a server past the handshake arbitrary bytes after a
// record of the client's: it never panics, consumes no more than it is
// given (all of them unless it fails), reads the client's record, and
// fails only with ErrTLS. The seeds in testdata/fuzz run with go test.
func FuzzInput(f *testing.F) {
	f.Add([]byte{23, 3, 3, 0, 5, 1, 2, 3, 4, 5})
	f.Add([]byte{21, 3, 3, 0, 2, 2, 40})
	f.Add([]byte{23, 3, 3, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, s := tlsPair(t)
		wire, err := c.l.Output(nil, []byte("ok"))
		if err != nil {
			t.Fatal(err)
		}
		all := append(wire, in...)
		left := all
		err = s.feed(&left)
		if len(left) > len(all) || err == nil && len(left) != 0 {
			t.Fatalf("%d bytes left of %d, error %v", len(left), len(all), err)
		}
		if len(s.plain) < 2 || string(s.plain[:2]) != "ok" {
			t.Fatalf("read %q", s.plain)
		}
		if err != nil && !errors.Is(err, ErrTLS) {
			t.Fatalf("error %v does not wrap ErrTLS", err)
		}
	})
}
