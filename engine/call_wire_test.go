// Tests of calls on the wire: replies out of order, the original peer,
// the frame format, frames too large, and a dialer closed with calls.

package engine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestCallRepliesOutOfOrder has a hand-written server read 5000 requests
// in flight on one connection, check that their ids are unique, and answer
// them in shuffled order, some with a reply failure, after a reply to an
// id nobody used; then it repeats a reply already given. Each Call must get
// its own answer, and the stray replies must be ignored. Not parallel, as
// TestCallManyInFlight.
func TestCallRepliesOutOfOrder(t *testing.T) {
	const n = 5000
	addr, accept := rawServer(t, 128)
	cl := callDial(t, addr, handler.NewRouter())
	p := accept()
	ctx := testContext(t)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got sumResp
			err := cl.Call(ctx, opSum, sumReq{A: i, B: 2 * i}, &got)
			var ve handler.ArgumentValueError
			switch {
			case i%10 == 0:
				if !errors.As(err, &ve) || string(ve) != fmt.Sprintf("no %d", i) {
					errs <- fmt.Errorf("call %d: %v, want ArgumentValueError \"no %d\"", i, err, i)
				}
			case err != nil || got.Sum != 3*i:
				errs <- fmt.Errorf("call %d: %v %v", i, got, err)
			}
		}()
	}

	type request struct {
		ID   uint64
		Op   codec.Opcode
		Data sumReq
	}
	reqs := make([]request, 0, n)
	seen := make(map[uint64]bool, n)
	for range n {
		op, obj := p.read()
		var r request
		if err := codec.Unmarshal(obj, &r); op != codec.OpRequest || err != nil || r.Op != opSum {
			t.Fatalf("request: %d %s %v", op, obj, err)
		}
		if seen[r.ID] {
			t.Fatalf("id %d used twice among pending calls", r.ID)
		}
		seen[r.ID] = true
		reqs = append(reqs, r)
	}
	var maxID uint64
	for id := range seen {
		maxID = max(maxID, id)
	}
	// Python's spacing, as the original would write it.
	p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": -1}}`, maxID+1))
	p.write(fmt.Sprintf(`-5{"id": %d, "reason": "ArgumentValueError", "message": "stray"}`, maxID+2))
	rand.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	w := bufio.NewWriter(p.conn)
	frame := make([]byte, 0, p.size)
	for _, r := range reqs {
		var err error
		if r.Data.A%10 == 0 {
			frame, err = codec.AppendFailureOp(frame[:0], p.size, codec.OpReplyFailure, &r.ID,
				handler.ReasonArgumentValueError, fmt.Sprintf("no %d", r.Data.A))
		} else {
			frame, err = codec.AppendRaw(frame[:0], p.size, codec.OpReply,
				fmt.Appendf(nil, `{"id": %d, "data": {"sum": %d}}`, r.ID, r.Data.A+r.Data.B))
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// A second answer to a call already answered is dropped.
	p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": -1}}`, reqs[0].ID))
	close(errs)
	bad := 0
	for err := range errs {
		if bad++; bad <= 5 {
			t.Error(err)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d calls failed", bad, n)
	}
	checkPending(t, "client", cl)
	// The connection is still in step.
	errc := make(chan error, 1)
	go func() {
		var got sumResp
		err := cl.Call(ctx, opSum, sumReq{A: 1, B: 1}, &got)
		if err == nil && got.Sum != 2 {
			err = fmt.Errorf("sum %d", got.Sum)
		}
		errc <- err
	}()
	var last request
	op, obj := p.read()
	if err := codec.Unmarshal(obj, &last); op != codec.OpRequest || err != nil {
		t.Fatalf("request: %d %s %v", op, obj, err)
	}
	p.write(fmt.Sprintf(`-4{"id": %d, "data": {"sum": 2}}`, last.ID))
	if err := <-errc; err != nil {
		t.Errorf("call after the stray replies: %v", err)
	}
}

// originalPeer answers like the original Python simplerpc: application
// frames are echoed, protocol frames it does not know (-3 and below) are
// handed to handlers that drop them. It reads until the peer closes.
func originalPeer(p *rawPeer, got chan<- string) {
	buf := make([]byte, p.size)
	for {
		if _, err := io.ReadFull(p.r, buf); err != nil {
			close(got)
			return
		}
		op, obj, err := codec.Decode(buf)
		if err != nil {
			continue
		}
		got <- fmt.Sprintf("%d%s", op, obj)
		if op >= 0 {
			frame, _ := codec.AppendRaw(nil, p.size, op, obj)
			if _, err := p.conn.Write(frame); err != nil {
				close(got)
				return
			}
		}
	}
}

// TestCallOriginalPeer checks, against hand-written peers that behave like
// the original, that a call they do not understand ends with the caller's
// deadline and leaves the stream in step, in both directions.
func TestCallOriginalPeer(t *testing.T) {
	t.Parallel()
	t.Run("client calls an original server", func(t *testing.T) {
		t.Parallel()
		addr, accept := rawServer(t, 256)
		echoes := newRecorder()
		r := handler.NewRouter()
		r.On(0, func(_ handler.Conn, data []byte) error {
			echoes.add(string(data))
			return nil
		})
		cl := callDial(t, addr, r)
		p := accept()
		got := make(chan string, 16)
		done := make(chan struct{})
		go func() { defer close(done); originalPeer(p, got) }()
		ctx := testContext(t)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := cl.Call(cctx, opSum, sumReq{A: 1, B: 2}, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call: %v, want context.DeadlineExceeded", err)
		}
		checkPending(t, "client", cl)
		if err := cl.Send(0, map[string]int{"x": 1}); err != nil {
			t.Fatal(err)
		}
		if e := echoes.wait(t, 1); e[0] != `{"x":1}` {
			t.Errorf("echo %q", e[0])
		}
		if f := <-got; f != `-3{"id":1,"op":1,"data":{"a":1,"b":2}}` {
			t.Errorf("original server read %q", f)
		}
		_ = cl.Close()
		<-done
	})
	t.Run("server calls an original client", func(t *testing.T) {
		t.Parallel()
		ids := make(chan uint64, 1)
		srv := startServer(t, echoRouter(), engine.WithMessageSize(256),
			engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
		p := dialRaw(t, srv.Addr().String())
		p.greet(256)
		ctx := testContext(t)
		id := <-ids
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := srv.Call(cctx, id, opSum, sumReq{A: 1, B: 2}, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Server.Call: %v, want context.DeadlineExceeded", err)
		}
		c, _ := srv.Conn(id)
		checkPending(t, "server conn", c)
		if f := p.readText(); f != `-3{"id":1,"op":1,"data":{"a":1,"b":2}}` {
			t.Errorf("original client read %q", f)
		}
		p.write(`0{"some_data": 123}`)
		if f := p.readText(); f != `0{"some_data": 123}` {
			t.Errorf("echo %q", f)
		}
	})
}

// TestCallWireFormat checks the frames of docs/PROTOCOL.md §5 and §6 byte
// for byte, with hand-written peers on both sides: what a caller writes,
// what a callee answers, and what each ignores.
func TestCallWireFormat(t *testing.T) {
	t.Parallel()
	t.Run("server answers", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, sumRouter(), engine.WithMessageSize(256))
		p := dialRaw(t, srv.Addr().String())
		p.greet(256)
		for _, tc := range []struct{ send, want string }{
			{`-3{"id": 7, "op": 1, "data": {"a": 2, "b": 3}}`, `-4{"id":7,"data":{"sum":5}}`},
			{`-3{"id": 8, "op": 99, "data": {}}`, `-5{"id":8,"reason":"UnknownOpcode","message":"No call handler for opcode 99"}`},
			{`-3{"id": 9, "op": 1, "data": {"a": 2}}`, `-5{"id":9,"reason":"ArgumentMissing","message":"Expected argument 'b' in opcode 1"}`},
			{`-3{"id": 18446744073709551615, "op": 1, "data": {"a": 0, "b": 0}}`, `-4{"id":18446744073709551615,"data":{"sum":0}}`},
			{`-3{"id": 12, "op": -1, "data": {}}`, `-5{"id":12,"reason":"UnknownOpcode","message":"No call handler for opcode -1"}`},
			{`-3{"op": 1, "data": {}}`, `-1{"reason":"MalformedPayload","message":"Malformed request frame"}`},
			{`-3{"id": "13", "op": 1, "data": {}}`, `-1{"reason":"MalformedPayload","message":"Malformed request frame"}`},
			{`-3{"id": 10, "op": 1, "data": [1]}`, `-1{"reason":"MalformedPayload","message":"Malformed request frame"}`},
			// simplerpc's own compact form, read in one pass; what that
			// pass refuses is read the general way, with the same answers.
			{`-3{"id":20,"op":1,"data":{"a":2,"b":3}}`, `-4{"id":20,"data":{"sum":5}}`},
			{`-3{"id":21,"op":1,"data":{"a":2,"b":3},"x":{}}`, `-4{"id":21,"data":{"sum":5}}`},
			{`-3{"id":022,"op":1,"data":{"a":2,"b":3}}`, `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{"-3{\"id\":23,\"op\":1,\"data\":{\"a\":2,\"b\":3,\"c\":\"\xff\"}}", `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{`-3{"id":24,"op":1,"data":{"a":2,"b":3}`, `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{`-3{"id":25,"op":1,"data":{"a":2,"b":3}}}`, `-1{"reason":"MalformedPayload","message":"JSON malformed for opcode: -3"}`},
			{`-6{"t": 42}`, `-7{"t": 42}`},
		} {
			p.write(tc.send)
			if got := p.readText(); got != tc.want {
				t.Errorf("sent %s\n got %s\nwant %s", tc.send, got, tc.want)
			}
		}
		// Replies nobody asked for, a pong nobody asked for, and an
		// unknown protocol opcode are ignored: the next answer is the
		// next request's.
		for _, s := range []string{`-4{"id": 12345, "data": {}}`, `-5{"id": 1, "reason": "X", "message": ""}`,
			`-7{"t": 1}`, `-9{}`} {
			p.write(s)
		}
		p.write(`-3{"id": 11, "op": 1, "data": {"a": 1, "b": 1}}`)
		if got := p.readText(); got != `-4{"id":11,"data":{"sum":2}}` {
			t.Errorf("after ignored frames: %s", got)
		}
	})
	t.Run("client calls and answers", func(t *testing.T) {
		t.Parallel()
		addr, accept := rawServer(t, 256)
		cl := callDial(t, addr, sumRouter())
		p := accept()
		ctx := testContext(t)
		errc := make(chan error, 1)
		go func() {
			var got sumResp
			err := cl.Call(ctx, opSum, sumReq{A: 1, B: 2}, &got)
			if err == nil && got.Sum != 3 {
				err = fmt.Errorf("sum %d", got.Sum)
			}
			errc <- err
		}()
		if got := p.readText(); got != `-3{"id":1,"op":1,"data":{"a":1,"b":2}}` {
			t.Errorf("client's request: %s", got)
		}
		p.write(`-3{"id": 1, "op": 1, "data": {"a": 40, "b": 2}}`) // the same id, the other way
		if got := p.readText(); got != `-4{"id":1,"data":{"sum":42}}` {
			t.Errorf("client's reply: %s", got)
		}
		p.write(`-9{}`) // an unknown protocol opcode: ignored
		p.write(`-6{"t": 5}`)
		if got := p.readText(); got != `-7{"t": 5}` {
			t.Errorf("client's pong: %s", got)
		}
		p.write(`-4{"id": 1, "data": {"sum": 3}}`)
		if err := <-errc; err != nil {
			t.Errorf("call: %v", err)
		}
		checkPending(t, "client", cl)
	})
}

// TestCallTooLarge checks that a request or a reply that does not fit the
// connection's frame size fails the call at once, instead of being dropped
// and leaving the caller to its deadline: the caller gets
// codec.ErrFrameTooLarge for its own request, and a reply failure for a
// reply too large. Both ways, and the connection carries on.
func TestCallTooLarge(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 300) // fits the bounds, not a 256-byte frame
	bigRouter := func() *handler.Router {
		r := sumRouter()
		r.OnCall(30, func(handler.Conn, []byte) (any, error) { return map[string]string{"s": big}, nil })
		return r
	}
	ids := make(chan uint64, 1)
	srv := startServer(t, bigRouter(), engine.WithMessageSize(256),
		engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	cl := callDial(t, srv.Addr().String(), bigRouter())
	ctx := testContext(t)
	id := <-ids
	for _, dir := range []struct {
		name string
		call func(context.Context, codec.Opcode, any, any) error
	}{
		{"client to server", cl.Call},
		{"server to client", func(ctx context.Context, op codec.Opcode, req, resp any) error {
			return srv.Call(ctx, id, op, req, resp)
		}},
	} {
		start := time.Now()
		err := dir.call(ctx, opSum, map[string]any{"a": 1, "b": 2, "pad": big}, nil)
		if !errors.Is(err, codec.ErrFrameTooLarge) {
			t.Errorf("%s: request too large: %v, want codec.ErrFrameTooLarge", dir.name, err)
		}
		err = dir.call(ctx, 30, struct{}{}, nil)
		var e *handler.Error
		if !errors.As(err, &e) || e.Reason != handler.ReasonInternal || e.Message != "reply too large" {
			t.Errorf("%s: reply too large: %v, want InternalError \"reply too large\"", dir.name, err)
		}
		if d := time.Since(start); d > testTimeout/2 {
			t.Errorf("%s: took %v", dir.name, d)
		}
		var got sumResp
		if err := dir.call(ctx, opSum, sumReq{A: 2, B: 2}, &got); err != nil || got.Sum != 4 {
			t.Errorf("%s: call after: %v %v", dir.name, got, err)
		}
	}
	checkPending(t, "client", cl)
}

// TestCallDialerClose closes a Dialer whose 100 clients all have a call in
// flight while each keeps sending: every call ends with ErrClosed, and the
// loop survives closing many connections while its queue keeps filling (a
// nested round used to drain the queue and reuse the buffer being drained).
// Not parallel: its senders spin.
func TestCallDialerClose(t *testing.T) {
	const clients = 100
	srvR := sumRouter()
	// The senders start once every request has reached the server: before
	// that they could fill a client's outbound queue ahead of its call's
	// request, which would then fail with ErrOutboundFull, not ErrClosed.
	var requests atomic.Int64
	allSent := make(chan struct{})
	srv := startServer(t, srvR, engine.WithWorkerPool(2, 1024),
		engine.WithTap(func(_ handler.Conn, op codec.Opcode, _ []byte) {
			if op == codec.OpRequest && requests.Add(1) == clients {
				close(allSent)
			}
		}))
	b := newBlocker(t, srvR)
	d, err := engine.NewDialer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := testContext(t)
	cls := make([]*engine.Client, clients)
	for i := range cls {
		if cls[i], err = d.Dial(ctx, srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*clients)
	stop := make(chan struct{})
	for _, cl := range cls {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- cl.Call(ctx, opBlock, struct{}{}, nil) }()
		wg.Add(1)
		go func() { // keeps the loop's queue busy during the close
			defer wg.Done()
			select {
			case <-allSent:
			case <-stop:
				return
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if cl.Send(opFlood, struct{}{}) != nil {
					return
				}
			}
		}()
	}
	b.wait(t)
	select {
	case <-allSent:
	case <-ctx.Done():
		t.Fatal("requests did not all reach the server")
	}
	time.Sleep(20 * time.Millisecond) // let the senders fill the queue
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, engine.ErrClosed) {
			t.Errorf("call on a closed dialer: %v, want ErrClosed", err)
		}
	}
	for _, cl := range cls {
		select {
		case <-cl.Done():
		case <-ctx.Done():
			t.Fatal("client not closed")
		}
		checkPending(t, "client", cl)
	}
}
