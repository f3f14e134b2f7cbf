package engine_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestHostileFirstFrame: a server whose first frame is a -2 whose object
// never ends (`-2{"message_size":"999...`) cannot make the client hold
// more than a first frame's worth: the client closes with ErrProtocol
// after 1 KiB, even with a 16 MiB upper frame bound, instead of buffering
// up to the bound (and rescanning it on every read).
func TestHostileFirstFrame(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const total = 64 << 20
	wrote := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			wrote <- 0
			return
		}
		defer c.Close()
		n, _ := c.Write([]byte(`-2{"message_size":"`))
		chunk := []byte(strings.Repeat("9", 64<<10))
		for n < total {
			k, err := c.Write(chunk)
			n += k
			if err != nil {
				break
			}
		}
		wrote <- n
	}()
	cl, err := engine.Dial(ctx, ln.Addr().String(), handler.NewRouter(), engine.WithSizeBounds(64, 16<<20), engine.WithMaxOutbound(32<<20, engine.SlowClose), engine.WithMaxInbound(32<<20))
	if err != nil && !errors.Is(err, engine.ErrProtocol) {
		t.Fatalf("Dial: %v, want nil or ErrProtocol", err)
	}
	if err == nil {
		t.Cleanup(func() { cl.Close() })
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("the client never gave up on the endless first frame")
		}
		if err := cl.Err(); !errors.Is(err, engine.ErrProtocol) {
			t.Fatalf("client ended with %v, want ErrProtocol", err)
		}
	}
	// The server could write only what the kernel's buffers took before
	// the client closed: far less than the client's 16 MiB bound.
	if n := <-wrote; n >= 16<<20 {
		t.Fatalf("the server wrote %d bytes before the client gave up", n)
	}
}
