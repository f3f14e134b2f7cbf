// This file drives a connection's read path (traffic) over a fake gnet
// connection, with no socket: what the engine itself does per frame of an
// echo, from the read to the reply's bytes, counted and benchmarked apart
// from the system calls.

package engine

import (
	"io"
	"testing"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// fakeWire is a gnet connection that hands out what was put in it and
// takes whatever is written, as a socket that always has room: the
// methods traffic and the write path use, and no other.
type fakeWire struct {
	gnet.Conn // nil: any other method panics
	in        []byte
	written   int
	writes    int
	onWrite   func() // if set, called on each write
	// Calls to the buffers' sizes, for the tests that count them.
	askedIn, askedOut int
}

func (w *fakeWire) InboundBuffered() int {
	w.askedIn++
	return len(w.in)
}

func (w *fakeWire) Peek(n int) ([]byte, error) {
	if n < 0 || n > len(w.in) {
		if n < 0 {
			return w.in, nil
		}
		return nil, io.ErrShortBuffer
	}
	return w.in[:n], nil
}

func (w *fakeWire) Discard(n int) (int, error) {
	n = min(n, len(w.in))
	w.in = w.in[n:]
	return n, nil
}

func (w *fakeWire) Write(b []byte) (int, error) {
	if w.onWrite != nil {
		w.onWrite()
	}
	w.written += len(b)
	w.writes++
	return len(b), nil
}

func (w *fakeWire) OutboundBuffered() int {
	w.askedOut++
	return 0
}

func (w *fakeWire) Wake(gnet.AsyncCallback) error { return nil }

// echoOnFake returns an open server connection of size-byte frames over a
// fake wire, whose opcode 0 callback sends back what it was handed.
func echoOnFake(tb testing.TB, size int) (*conn, *fakeWire) {
	tb.Helper()
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	s, err := NewServer(r, WithMessageSize(size))
	if err != nil {
		tb.Fatal(err)
	}
	w := &fakeWire{}
	c := newConn(&s.side, s, s.newID())
	c.gc = w
	c.loop = newLoop(&s.side, nil)
	c.inSize = int32(size)
	c.setOutSize(size)
	c.open(nil)
	if !c.started || w.writes != 1 {
		tb.Fatalf("the connection did not open: started %v, %d writes", c.started, w.writes)
	}
	return c, w
}

// echoFrames returns k opcode-0 frames of size bytes, one after another.
func echoFrames(tb testing.TB, size, k int) []byte {
	tb.Helper()
	f, err := codec.Append(nil, size, 0, map[string]any{"some_data": 123, "pad": "0123456789abcdef0123456789abcdef"})
	if err != nil {
		tb.Fatal(err)
	}
	var b []byte
	for range k {
		b = append(b, f...)
	}
	return b
}

// TestTrafficCountsPerRead reads 16 echoed frames at once and counts the
// shared work they cost: the frame counters are added to once each way
// (one run of opcode 0), and the side's count of inline callbacks, which
// every loop writes, is raised once, not once per frame. The counters
// hold every frame before the replies are written. The wire is asked what
// it holds of the input twice a read (before the frames, and for a
// partial one after), and of the output once a read for the
// back-pressure check, then once per reply for the outbound cap and once
// after the write.
func TestTrafficCountsPerRead(t *testing.T) {
	const size, k = 256, 16
	c, w := echoOnFake(t, size)
	l := c.loop
	st := &l.stats
	in0, out0 := st.in[opSlot(0)].Load(), st.out[opSlot(0)].Load()
	bytesIn, bytesOut := st.bytesIn.Load(), st.bytesOut.Load()
	publishes, raises, written := st.publishes, l.inlineRaises, w.written
	askedIn, askedOut := w.askedIn, w.askedOut
	w.onWrite = func() {
		if got := st.in[opSlot(0)].Load() - in0; got != k {
			t.Errorf("%d frames in counted when the replies are written, want %d", got, k)
		}
	}
	w.in = echoFrames(t, size, k)
	c.traffic()
	if w.written-written != k*size {
		t.Fatalf("%d bytes written, want %d", w.written-written, k*size)
	}
	if got := st.publishes - publishes; got != 2 {
		t.Errorf("the counters were added to %d times for %d frames each way, want 2", got, k)
	}
	if got := l.inlineRaises - raises; got != 1 {
		t.Errorf("side.inline raised %d times for %d callbacks, want 1", got, k)
	}
	if got := w.askedIn - askedIn; got != 2 {
		t.Errorf("the input's size asked %d times for a read of %d frames, want 2", got, k)
	}
	if got := w.askedOut - askedOut; got != k+2 {
		t.Errorf("the output's size asked %d times for a read of %d frames, want %d", got, k, k+2)
	}
	if n := c.side.inline.Load(); n != 0 {
		t.Errorf("side.inline is %d after the round, want 0", n)
	}
	if in, out := st.in[opSlot(0)].Load()-in0, st.out[opSlot(0)].Load()-out0; in != k || out != k {
		t.Errorf("opcode 0: %d in, %d out, want %d each", in, out, k)
	}
	if in, out := st.bytesIn.Load()-bytesIn, st.bytesOut.Load()-bytesOut; in != k*size || out != k*size {
		t.Errorf("%d bytes in, %d out, want %d each", in, out, k*size)
	}
}

// TestTrafficEchoAllocs: a read of 16 echoed frames allocates nothing,
// the jobs, the handed object's record and the counters' runs included.
// The least of five measurements is kept: the count is the process's, and
// a parallel test may allocate during one.
func TestTrafficEchoAllocs(t *testing.T) {
	const size, k = 256, 16
	c, w := echoOnFake(t, size)
	frames := echoFrames(t, size, k)
	read := func() {
		w.in = frames
		c.traffic()
	}
	least := testing.AllocsPerRun(50, read)
	for range 4 {
		least = min(least, testing.AllocsPerRun(50, read))
	}
	if least != 0 {
		t.Errorf("a read of %d echoed frames allocates %v times, want 0", k, least)
	}
}
