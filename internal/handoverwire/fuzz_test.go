// This file fuzzes the reading of a batch's JSON.

package handoverwire

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseBatch reads arbitrary bytes as a batch: it never panics, and
// either fails with ErrWire or reads a batch of this version that encodes
// back to what reads the same. The seeds in testdata/fuzz run with go test.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`{"v":1,"next":7,"end":true}`))
	f.Add([]byte(`{"v":1,"next":1,"conns":[{"id":3,"in":1024,"out":1024,"unread":"MXt9","groups":["a"]}]}`))
	f.Add([]byte(`{"v":2,"next":1}`))
	f.Add([]byte(`{"v":3,"next":1,"frames":["MXt9","Mnt9"],"to":"AwIAAQQBAQ=="}`))
	f.Add([]byte(`{"v":3,"next":1,"frames":["MXt9"],"to":"AwEB"}`))
	f.Add([]byte(`{"next":1}`))
	f.Fuzz(func(t *testing.T, js []byte) {
		b, err := parseBatch(js)
		if err != nil {
			if !errors.Is(err, ErrWire) {
				t.Fatalf("error %v does not wrap ErrWire", err)
			}
			return
		}
		if b.V != Version {
			t.Fatalf("version %d read", b.V)
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseBatch(again); err != nil {
			t.Fatalf("%s does not read back: %v", again, err)
		}
	})
}
