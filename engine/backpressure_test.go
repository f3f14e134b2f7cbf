package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
)

// echoBurst returns n echo frames of size bytes on opcode 1, numbered.
func echoBurst(t *testing.T, size, n int) []byte {
	t.Helper()
	var burst []byte
	for i := range n {
		f, err := codec.AppendRaw(nil, size, 1, []byte(fmt.Sprintf(`{"i":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, f...)
	}
	return burst
}

// TestReadPausesWhileOutputBacksUp has a peer write 10 MB of echo requests
// in one write and read the replies more slowly than the server makes
// them: past what the kernel's buffers take (a few MB on loopback), the
// replies back up far past WithMaxOutbound, and instead of
// closing the peer as a slow consumer the server pauses its reading until
// the output drains. Every reply arrives, in order, and the connection
// stays open.
func TestReadPausesWhileOutputBacksUp(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const size, n = 512, 20_000
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(size),
		engine.WithMaxOutbound(256<<10, engine.SlowClose), engine.WithMaxInbound(32<<20))...)
	p := dialRaw(t, srv.Addr().String())
	// No smaller than loopback's MSS (64 KiB): below it Linux sends no
	// window updates, and the sender stalls on its persist timer.
	_ = p.conn.(*net.TCPConn).SetReadBuffer(128 << 10)
	p.greet(size)
	id := ev.idOf(ctx, t, p)

	burst := echoBurst(t, size, n)
	wrote := make(chan error, 1)
	go func() {
		_, err := p.conn.Write(burst)
		wrote <- err
	}()
	frame := make([]byte, size)
	for i := range n {
		if i%10 == 9 {
			time.Sleep(time.Millisecond) // a reader slower than the server: 5 MB/s at most
		}
		if _, err := io.ReadFull(p.r, frame); err != nil {
			t.Fatalf("reply %d of %d: %v (the server closed with %v)", i, n, err, ev.reasonFor(ctx, t, id))
		}
		want := fmt.Sprintf(`1{"i":%d}`, i)
		if !bytes.HasPrefix(frame, []byte(want)) {
			t.Fatalf("reply %d is %.40q, want %s", i, frame, want)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the burst's write: %v", err)
	}
	if _, ok := srv.Conn(id); !ok {
		t.Fatal("the connection closed")
	}
	if st := srv.Stats(); st.Paused == 0 {
		t.Fatalf("reading never paused (Stats %+v): the test did not back the output up", st.Paused)
	}
}

// TestPausedPeerThatNeverReads has a peer send requests without end and
// never read: the server pauses its reading once the replies back up, and
// closes it with ErrInboundFull once it holds more than WithMaxInbound
// unread. Another connection is served throughout.
func TestPausedPeerThatNeverReads(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const size = 512
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(size),
		engine.WithMaxOutbound(64<<10, engine.SlowClose), engine.WithMaxInbound(1<<20),
		engine.WithWriteDeadline(0))...)
	addr := srv.Addr().String()
	flood := dialRaw(t, addr)
	flood.greet(size)
	id := ev.idOf(ctx, t, flood)
	other := dialRaw(t, addr)
	other.greet(size)

	chunk := echoBurst(t, size, 256)
	go func() {
		for range 1 << 12 { // 512 MiB at most: far past the cap
			if _, err := flood.conn.Write(chunk); err != nil {
				return // closed: the cap came
			}
		}
	}()
	if r := ev.reasonFor(ctx, t, id); !errors.Is(r, engine.ErrInboundFull) {
		t.Fatalf("the flooding peer closed with %v, want ErrInboundFull", r)
	}
	other.write(`1{"still":"here"}`)
	if op, obj := other.read(); op != 1 || string(obj) != `{"still":"here"}` {
		t.Fatalf("the other peer got %d %s", op, obj)
	}
}
