package handler

import "testing"

// TestDecodeAllocs checks that decoding a request whose fields need no
// memory of their own allocates nothing: asking whether the value
// implements Validator once copied a struct request to the heap per call.
func TestDecodeAllocs(t *testing.T) {
	type req struct {
		N int `json:"n" simplerpc:"required"`
		M int `json:"m"`
	}
	d := newDecoder[req](1)
	data := []byte(`{"n":1,"m":2}`)
	var v req
	if n := testing.AllocsPerRun(1000, func() { _ = d.decode(data, &v) }); n != 0 {
		t.Fatalf("decode allocates %.0f times per call, want 0", n)
	}
	if v.N != 1 || v.M != 2 {
		t.Fatalf("decoded %+v", v)
	}
}
