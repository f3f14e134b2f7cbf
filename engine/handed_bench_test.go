// This file measures what SendRaw costs a callback that sends back the
// object it was handed (handed, direct.go) next to one it built.

package engine

import (
	"strings"
	"testing"
)

// BenchmarkSendRawValidation measures the validation step of SendRaw for
// the benchmarks page's echo object (183 bytes): object=handed is the echo,
// recorded by the loop before the callback and compared after (no scan);
// object=built is any other object, scanned by codec.Object, as every
// object was before. Compare with: benchstat -col /object.
func BenchmarkSendRawValidation(b *testing.B) {
	obj := []byte(`{"t":"1733450000123456789","user":"bench-user-0042","seq":123456,"tags":["alpha","beta","gamma"],` +
		`"pos":{"x":12.5,"y":-3.25,"z":0},"ok":true,"note":"` + strings.Repeat("x", 40) + `"}`)
	c := &conn{loop: &loop{}}
	h := &c.loop.handed
	b.Run("object=handed", func(b *testing.B) {
		b.SetBytes(int64(len(obj)))
		b.ReportAllocs()
		for b.Loop() {
			h.hold(c, obj)
			if _, err := c.validated(obj); err != nil {
				b.Fatal(err)
			}
			h.release()
		}
	})
	b.Run("object=built", func(b *testing.B) {
		b.SetBytes(int64(len(obj)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.validated(obj); err != nil {
				b.Fatal(err)
			}
		}
		if h.checks.Load() == 0 {
			b.Fatal("not validated")
		}
	})
}
