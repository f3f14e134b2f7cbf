package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// FuzzServerStream fuzzes the engine's input path, not only the codec: the
// bytes of each input go to a running server over a real TCP connection,
// cut into several writes, and the server must stay up and in step.
//
// An input is a split header and a stream: the low three bits of the first
// byte give the number of cuts (0 to 7), each of the next bytes places one
// cut at that fraction (b/256) of the stream, and the rest is the stream.
// The cuts are separate writes, so the server sees frames arrive in pieces
// (how the kernel delivers them is its own business: the cuts are a chance,
// not a guarantee, of a split read).
//
// The test reads the stream as the server must (framing at the inbound
// size, which a well-formed in-bounds -2 frame changes), pads a trailing
// partial frame with spaces, and then writes one valid echo frame, the
// marker. Checked for every input:
//
//   - every frame the server sends is well-formed: the opcode without
//     leading zeros or padding, one JSON object, spaces to the frame size;
//     failures are -1 or -5 frames with a reason and message of the
//     documented kinds; nothing but the expected opcodes arrives;
//   - the marker's echo comes back, in step, at the size the server last
//     announced, which is the size the stream asked for last (PROTOCOL.md
//     §3), unless the stream is one the server must close (streamModel):
//     a -2 frame whose size is not an integer within the bounds
//     (InvalidMessageSize, then ErrSizeOutOfBounds) or a run of malformed
//     frames (ErrProtocol); then it closes for that reason, and a fresh
//     connection still echoes;
//   - the server logs no warning or error (a recovered panic is logged);
//   - once the peer closes, the server's connection count returns to zero.
//
// One server serves every input of a process. Run it with
//
//	go test -run '^$' -fuzz FuzzServerStream -fuzztime 180s ./engine/
func FuzzServerStream(f *testing.F) {
	fs := startFuzzServer(f)
	f.Add([]byte("\x00" + `0{"hello":"world"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fs.check(t, data)
	})
}

// Sizes of the fuzzed server: small frames are cheap frames.
const (
	fuzzSize    = 128
	fuzzMinSize = 64
	fuzzMaxSize = 4 << 10         // room for 513 levels of nesting, small enough to mutate fast
	fuzzWait    = 5 * time.Second // bounds each input's reads and writes
	// fuzzMaxMalformed is the run of malformed frames that closes a
	// connection (WithMaxMalformed, its default).
	fuzzMaxMalformed = 16
)

// fuzzServer is the one server of a fuzzing process and what it reported.
type fuzzServer struct {
	srv   *engine.Server
	addr  string
	conns *connLog
	logs  *fuzzLogs
	seq   int // the marker's nonce
}

// connLog records the server's connect and disconnect callbacks without
// ever blocking the loop that runs them: an input that fails leaves its
// events behind, and a full channel would stop the server.
type connLog struct {
	mu     sync.Mutex
	opened map[string]uint64 // the peer's address -> net id
	closed map[uint64]error  // net id -> reason
	notify chan struct{}
}

func newConnLog() *connLog {
	return &connLog{opened: map[string]uint64{}, closed: map[uint64]error{}, notify: make(chan struct{}, 1)}
}

func (l *connLog) open(c handler.Conn) {
	l.mu.Lock()
	l.opened[c.RemoteAddr()] = c.ID()
	l.mu.Unlock()
	l.poke()
}

func (l *connLog) close(c handler.Conn, reason error) {
	l.mu.Lock()
	l.closed[c.ID()] = reason
	l.mu.Unlock()
	l.poke()
}

func (l *connLog) poke() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// wait waits, within fuzzWait, until found reports true; found runs under
// the lock.
func (l *connLog) wait(t *testing.T, what string, found func() bool) {
	t.Helper()
	deadline := time.NewTimer(fuzzWait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		ok := found()
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// idOf returns the net id of the server's connection to the local address.
func (l *connLog) idOf(t *testing.T, local string) uint64 {
	t.Helper()
	var id uint64
	l.wait(t, "the connect callback", func() bool {
		id = l.opened[local]
		delete(l.opened, local)
		return id != 0
	})
	return id
}

// reasonFor waits for the disconnect callback of id and returns its reason.
func (l *connLog) reasonFor(t *testing.T, id uint64) error {
	t.Helper()
	var reason error
	l.wait(t, fmt.Sprintf("the disconnect callback of %d", id), func() bool {
		r, ok := l.closed[id]
		reason = r
		delete(l.closed, id)
		return ok
	})
	return reason
}

// reasonNow returns the disconnect reason of id, if reported already.
func (l *connLog) reasonNow(id uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed[id]
}

func startFuzzServer(tb testing.TB) *fuzzServer {
	tb.Helper()
	fs := &fuzzServer{conns: newConnLog(), logs: &fuzzLogs{}}
	r := handler.NewRouter()
	r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
		if op == 5 {
			return handler.ArgumentMissing("Expected argument 'argname' in opcode 5")
		}
		return c.SendRaw(op, data)
	})
	// rawJSON (robust_test.go) encodes as itself.
	r.OnCall(1, func(_ handler.Conn, data []byte) (any, error) { return rawJSON(data), nil })
	r.OnCall(2, func(handler.Conn, []byte) (any, error) { return nil, handler.ArgumentValueError("no") })
	srv, err := engine.NewServer(r,
		engine.WithMessageSize(fuzzSize),
		engine.WithSizeBounds(fuzzMinSize, fuzzMaxSize),
		engine.WithMaxMalformed(fuzzMaxMalformed),
		engine.WithLogger(slog.New(fs.logs)),
		engine.WithOnConnect(fs.conns.open),
		engine.WithOnDisconnect(fs.conns.close))
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	fs.logs.take() // what starting logged (GOMAXPROCS 1 is warned of): the inputs are judged on what they make it log
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	fs.srv, fs.addr = srv, srv.Addr().String()
	return fs
}

// fuzzLogs is a slog.Handler that keeps warnings and errors.
type fuzzLogs struct {
	mu   sync.Mutex
	recs []string
}

func (l *fuzzLogs) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *fuzzLogs) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *fuzzLogs) WithGroup(string) slog.Handler                 { return l }
func (l *fuzzLogs) Handle(_ context.Context, r slog.Record) error {
	s := r.Level.String() + " " + r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	l.mu.Lock()
	l.recs = append(l.recs, s)
	l.mu.Unlock()
	return nil
}

func (l *fuzzLogs) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs
	l.recs = nil
	return r
}

// splitInput cuts an input into its stream and the stream's pieces.
func splitInput(data []byte) (stream []byte, pieces [][]byte) {
	if len(data) == 0 {
		return nil, nil
	}
	n := min(int(data[0]&7), len(data)-1)
	cuts, stream := data[1:1+n], data[1+n:]
	at := make([]int, 0, n+2)
	at = append(at, 0)
	for _, c := range cuts {
		at = append(at, len(stream)*int(c)/256)
	}
	at = append(at, len(stream))
	slices.Sort(at)
	for i := 1; i < len(at); i++ {
		if at[i] > at[i-1] {
			pieces = append(pieces, stream[at[i-1]:at[i]])
		}
	}
	return stream, pieces
}

// streamModel is what the server must make of a stream, by the rules of
// docs/PROTOCOL.md and docs/OPERATIONS.md: the frames it reads, at the size
// in force for each, and whether it closes the connection, and why.
type streamModel struct {
	size   int   // the inbound size after the stream
	bad    int   // malformed frames' score: +16 each, -1 per other frame
	closes error // ErrSizeOutOfBounds or ErrProtocol once the server is to close; nil while it is not
	frames int   // complete frames read
}

// feed reads the complete frames of b from offset pos and returns where
// the unread rest begins:
//   - a frame that does not decode, a request whose envelope does not read
//     and a -2 frame without message_size are malformed: a MalformedPayload
//     failure each, adding 16 to a score any other frame takes 1 off;
//     at 16 x fuzzMaxMalformed (that many in a row) it closes with
//     ErrProtocol;
//   - a -2 frame whose message_size is not an integer within the bounds
//     closes with ErrSizeOutOfBounds, after an InvalidMessageSize failure;
//     one within them is the inbound size from the next frame on;
//   - a -8 frame (a client leaving the connection) closes it with
//     ErrGoAway, after what is queued for it.
func (m *streamModel) feed(b []byte, pos int) int {
	for m.closes == nil && pos+m.size <= len(b) {
		frame := b[pos : pos+m.size]
		pos += m.size
		m.frames++
		op, obj, _, err := codec.DecodeFrame(frame)
		switch {
		case err != nil && !errors.Is(err, codec.ErrMalformedCall):
			m.malformed()
		case op == codec.OpRequest && err != nil:
			m.pay()
			m.malformed()
		case op == codec.OpMessageSize:
			m.pay()
			m.sizeFrame(obj)
		case op == codec.OpGoAway:
			m.pay()
			m.closes = engine.ErrGoAway
		default:
			m.pay()
		}
	}
	return pos
}

func (m *streamModel) malformed() {
	if m.bad = min(m.bad+16, 16*fuzzMaxMalformed); m.bad == 16*fuzzMaxMalformed {
		m.closes = engine.ErrProtocol
	}
}

func (m *streamModel) pay() { m.bad = max(m.bad-1, 0) }

func (m *streamModel) sizeFrame(obj []byte) {
	var s struct {
		Size json.RawMessage `json:"message_size"`
	}
	if codec.Unmarshal(obj, &s) != nil || s.Size == nil {
		m.malformed()
		return
	}
	n, err := strconv.ParseInt(string(s.Size), 10, 64)
	if err != nil || n < fuzzMinSize || n > fuzzMaxSize {
		m.closes = engine.ErrSizeOutOfBounds
		return
	}
	m.size = int(n)
}

// failureReasons are the reasons the fuzzed server may send, by opcode.
var failureReasons = map[codec.Opcode][]string{
	codec.OpFailure: {handler.ReasonMalformedPayload, engine.ReasonInvalidSize, handler.ReasonArgumentMissing},
	codec.OpReplyFailure: {handler.ReasonUnknownOpcode, handler.ReasonArgumentValueError,
		handler.ReasonInternal, handler.ReasonMalformedPayload},
}

// check runs one input against the server.
func (fs *fuzzServer) check(t *testing.T, data []byte) {
	stream, pieces := splitInput(data)
	m := streamModel{size: fuzzSize}
	rest := m.feed(stream, 0)
	if m.closes == nil && rest < len(stream) {
		// A trailing partial frame: padded to a whole one, which the server
		// then reads too.
		padded := append(slices.Clip(stream), bytes.Repeat([]byte(" "), m.size-(len(stream)-rest))...)
		m.feed(padded, rest)
		pieces = append(pieces, padded[len(stream):])
	}
	fs.seq++
	marker := fmt.Sprintf(`{"marker":%d}`, fs.seq)
	if m.closes == nil {
		f, err := codec.AppendRaw(nil, m.size, 0, []byte(marker))
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, f)
	}

	nc, err := net.DialTimeout("tcp", fs.addr, fuzzWait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(fuzzWait))
	id := fs.conns.idOf(t, nc.LocalAddr().String())

	// The writes run beside the reads: the server may answer every frame,
	// and a peer that does not read is a slow consumer.
	wrote := make(chan error, 1)
	go func() {
		for _, p := range pieces {
			if _, err := nc.Write(p); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	out := serverReader{r: bufio.NewReader(nc), size: fuzzSize}
	if op, obj, err := out.next(); err != nil || op != codec.OpMessageSize {
		t.Fatalf("first frame: %d %s %v", op, obj, err)
	}
	refused := false
	for {
		op, obj, err := out.next()
		if err != nil {
			if m.closes == nil {
				t.Fatalf("after %d of the stream's frames were read: %v (disconnect reason %v)",
					m.frames, err, fs.conns.reasonNow(id))
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the server was to close the connection: %v", err)
			}
			if !refused && errors.Is(err, io.EOF) && m.closes == engine.ErrSizeOutOfBounds {
				t.Fatal("closed without an InvalidMessageSize failure")
			}
			break
		}
		if op == codec.OpFailure && failureReason(obj) == engine.ReasonInvalidSize {
			if m.closes == nil {
				t.Fatalf("InvalidMessageSize for a stream that announced no size out of bounds: %s", obj)
			}
			refused = true
		}
		if op == 0 && string(obj) == marker {
			if m.closes != nil {
				t.Fatal("the marker's echo arrived on a connection that was to close")
			}
			if out.size != m.size {
				t.Fatalf("the server writes %d-byte frames, reads %d-byte frames", out.size, m.size)
			}
			break
		}
	}
	if err := <-wrote; err != nil && m.closes == nil {
		t.Fatalf("write: %v", err)
	}
	_ = nc.Close()

	reason := fs.conns.reasonFor(t, id)
	switch {
	case m.closes != nil && !errors.Is(reason, m.closes):
		t.Fatalf("closed with %v, want %v", reason, m.closes)
	case m.closes == nil && !errors.Is(reason, io.EOF) && !errors.Is(reason, syscall.ECONNRESET):
		t.Fatalf("closed with %v, want the peer's close", reason)
	}
	if n := fs.srv.Stats().Conns; n != 0 {
		t.Fatalf("%d connections open once the peer closed", n)
	}
	if recs := fs.logs.take(); len(recs) > 0 {
		t.Fatalf("the server logged: %q", recs)
	}
	if fs.srv.Err() != nil {
		t.Fatalf("the server stopped: %v", fs.srv.Err())
	}
	if m.closes != nil || fs.seq%64 == 0 {
		fs.freshEcho(t)
	}
}

// freshEcho checks that a new connection gets its echo.
func (fs *fuzzServer) freshEcho(t *testing.T) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", fs.addr, fuzzWait)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(fuzzWait))
	id := fs.conns.idOf(t, nc.LocalAddr().String())
	out := serverReader{r: bufio.NewReader(nc), size: fuzzSize}
	if op, _, err := out.next(); err != nil || op != codec.OpMessageSize {
		t.Fatalf("fresh connection: first frame %d, %v", op, err)
	}
	f, _ := codec.AppendRaw(nil, fuzzSize, 3, []byte(`{"fresh":true}`))
	if _, err := nc.Write(f); err != nil {
		t.Fatal(err)
	}
	if op, obj, err := out.next(); err != nil || op != 3 || string(obj) != `{"fresh":true}` {
		t.Fatalf("fresh connection: echo %d %s %v", op, obj, err)
	}
	_ = nc.Close()
	fs.conns.reasonFor(t, id)
}

// serverReader reads the server's frames, following its -2 frames, and
// checks each one.
type serverReader struct {
	r    *bufio.Reader
	size int
}

// next reads one frame. An error is the connection's, or a frame that
// breaks the wire contract (errors.Is(err, errBadServerFrame)).
func (s *serverReader) next() (codec.Opcode, []byte, error) {
	buf := make([]byte, s.size)
	if _, err := io.ReadFull(s.r, buf); err != nil {
		return 0, nil, err
	}
	op, obj, err := codec.Decode(buf)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %q: %v", errBadServerFrame, buf, err)
	}
	if err := checkServerFrame(buf, op, obj); err != nil {
		return 0, nil, fmt.Errorf("%w: %q: %v", errBadServerFrame, buf, err)
	}
	if op == codec.OpMessageSize {
		var m struct {
			Size int `json:"message_size"`
		}
		_ = codec.Unmarshal(obj, &m)
		s.size = m.Size
	}
	return op, obj, nil
}

var errBadServerFrame = errors.New("the server sent a frame that breaks the wire contract")

// checkServerFrame checks one frame the server wrote against PROTOCOL.md:
// the opcode written as -?[0-9]+ right before the object, space padding,
// and the objects of the protocol's frames.
func checkServerFrame(frame []byte, op codec.Opcode, obj []byte) error {
	prefix := strconv.Itoa(int(op))
	if !bytes.HasPrefix(frame, []byte(prefix+"{")) {
		return fmt.Errorf("opcode %d not written as %q right before the object", op, prefix)
	}
	if pad := frame[len(prefix)+len(obj):]; len(bytes.Trim(pad, " ")) != 0 {
		return errors.New("padded with other bytes than spaces")
	}
	switch {
	case op == codec.OpFailure || op == codec.OpReplyFailure:
		var f struct {
			ID      *uint64 `json:"id"`
			Reason  *string `json:"reason"`
			Message *string `json:"message"`
		}
		if err := codec.Unmarshal(obj, &f); err != nil || f.Reason == nil || f.Message == nil {
			return fmt.Errorf("failure without a reason and a message (%v)", err)
		}
		if (op == codec.OpReplyFailure) != (f.ID != nil) {
			return errors.New("a -5 frame needs an id, a -1 frame has none")
		}
		if !slices.Contains(failureReasons[op], *f.Reason) {
			return fmt.Errorf("undocumented reason %q", *f.Reason)
		}
	case op == codec.OpMessageSize:
		var m struct {
			Size *int `json:"message_size"`
		}
		if err := codec.Unmarshal(obj, &m); err != nil || m.Size == nil || *m.Size < fuzzMinSize || *m.Size > fuzzMaxSize {
			return fmt.Errorf("bad size announcement (%v)", err)
		}
	case op == codec.OpReply:
		var r struct {
			ID   *uint64    `json:"id"`
			Data *rawObject `json:"data"`
		}
		if err := codec.Unmarshal(obj, &r); err != nil || r.ID == nil || r.Data == nil {
			return fmt.Errorf("reply without an id and data (%v)", err)
		}
	case op == codec.OpPong, op >= 0:
	default:
		return fmt.Errorf("unexpected opcode %d", op)
	}
	return nil
}

// failureReason returns the reason of a failure frame's object.
func failureReason(obj []byte) string {
	var f struct {
		Reason string `json:"reason"`
	}
	_ = codec.Unmarshal(obj, &f)
	return f.Reason
}

// rawObject accepts any JSON object.
type rawObject struct{}

func (*rawObject) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not an object")
	}
	return nil
}

// TestSizeAnnouncedTwiceInOneRead: a peer announces 200, then, at 200, 128,
// and sends a frame at 128, all in one write (FuzzServerStream's finding,
// seed size_grow_restore). PROTOCOL.md §3: the server answers each -2 whose
// size its outbound is not at yet, so it sends -2 200 (at 128) and -2 128
// (at 200), and echoes the frame at 128: both directions end at the size
// the peer asked for last.
func TestSizeAnnouncedTwiceInOneRead(t *testing.T) {
	t.Parallel()
	srv := startServer(t, echoRouter(), engine.WithMessageSize(128), engine.WithSizeBounds(64, 4096))
	p := dialRaw(t, srv.Addr().String())
	p.greet(128)
	var b []byte
	b, _ = codec.AppendRaw(b, 128, codec.OpMessageSize, []byte(`{"message_size":200}`))
	b, _ = codec.AppendRaw(b, 200, codec.OpMessageSize, []byte(`{"message_size":128}`))
	b, _ = codec.AppendRaw(b, 128, 0, []byte(`{"back":1}`))
	if _, err := p.conn.Write(b); err != nil {
		t.Fatal(err)
	}
	out := serverReader{r: p.r, size: 128}
	for i, want := range []string{`-2 {"message_size":200}`, `-2 {"message_size":128}`, `0 {"back":1}`} {
		op, obj, err := out.next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got := fmt.Sprintf("%d %s", op, obj); got != want {
			t.Fatalf("frame %d: got %s, want %s", i, got, want)
		}
	}
	if out.size != 128 {
		t.Fatalf("the server writes %d-byte frames; the peer asked for 128", out.size)
	}
}
