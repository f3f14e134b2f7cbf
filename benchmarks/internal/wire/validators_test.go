//go:build sonic

// This file compares the codec's validator with the other JSON validators
// a Go program could use, on 1,024 variants of the echo object (the
// figure behind docs/BENCHMARKS.md, "What the validation costs in
// place"). It is behind the sonic tag, as sonic is a dependency of this
// comparison only:
//
//	cd benchmarks && go test -tags sonic -run '^$' -bench Validators ./internal/wire

package wire

import (
	stdjson "encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bytedance/sonic"
	gojson "github.com/goccy/go-json"
	"github.com/simplerpc/simplerpc/codec"
)

// echoVariants returns n echo objects of different lengths and values, as
// codec's BenchmarkEcho makes them.
func echoVariants(n int) [][]byte {
	const object = `{"t":"%019d","user":"bench-user-%04d","seq":%d,` +
		`"tags":["alpha","beta","gamma"],"pos":{"x":12.5,"y":-3.25,"z":0},"ok":true,"note":"%s"}`
	objs := make([][]byte, n)
	for i := range objs {
		objs[i] = fmt.Appendf(nil, object, int64(i)*7919*1e9, i%10000, 100000+i*37, strings.Repeat("x", 30+i*13%20))
	}
	return objs
}

func BenchmarkValidators(b *testing.B) {
	objs := echoVariants(1024)
	for _, v := range []struct {
		name  string
		valid func([]byte) bool
	}{
		{"simplerpc", func(o []byte) bool { _, err := codec.Object(o); return err == nil }},
		{"sonic", sonic.Valid},
		{"go-json", gojson.Valid},
		{"encoding_json", stdjson.Valid},
	} {
		b.Run("impl="+v.name, func(b *testing.B) {
			for _, o := range objs {
				if !v.valid(o) {
					b.Fatalf("%s refused %s", v.name, o)
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(objs[0])))
			i := 0
			for b.Loop() {
				if !v.valid(objs[i]) {
					b.Fatal("refused")
				}
				i = (i + 1) % len(objs)
			}
		})
	}
}
