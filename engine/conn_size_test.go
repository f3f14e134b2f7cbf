// This file pins what an idle connection costs the engine: the size of its
// state, the largest share of a server's memory per connection.

package engine

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps a connection's state within the 112-byte allocation
// class: it was 224 bytes before the fields were ordered by size and the
// rarely used ones moved to connExtra, 184 before the sweep's notes on a
// waiting output moved there, 176 before the owner came from the side, the
// frame sizes narrowed to int32 and the layer, a peer address other than
// TCP's, the malformed score, the read holds and a client's notes moved
// there too, and 128 before the output built in a round became a buffer
// the loop lends (a pointer where a slice was). At 100,000 connections
// every allocation class is 1.6 MB more.
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(conn{}); n > 112 {
		t.Fatalf("conn is %d bytes, past the 112-byte allocation class: order its fields by size, or move a rarely used one to connExtra", n)
	}
}
