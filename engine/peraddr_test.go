package engine_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// dialFrom opens a raw connection to addr from the loopback address src.
func dialFrom(t *testing.T, src, addr string) *rawPeer {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: testTimeout}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return &rawPeer{t: t, conn: c, r: bufio.NewReader(c)}
}

// refused reads the failure frame a refused peer gets and then EOF.
func (p *rawPeer) refused(reason string) {
	p.t.Helper()
	op, obj := p.read()
	if op != codec.OpFailure || !strings.Contains(string(obj), `"reason":"`+reason+`"`) {
		p.t.Fatalf("refusal %d %s, want %s", op, obj, reason)
	}
	p.expectEOF()
}

// TestMaxConnsPerAddr: an address holds at most 3 connections; the fourth
// is refused with AddressFull before it reaches a loop, another address is
// not, and a connection that closes makes room again.
func TestMaxConnsPerAddr(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, echoRouter(), append(ev.options(), engine.WithMessageSize(128), engine.WithMaxConnsPerAddr(3))...)
	addr := srv.Addr().String()
	var first []*rawPeer
	for range 3 {
		p := dialFrom(t, "127.0.0.1", addr)
		p.greet(128)
		ev.next(ctx, t)
		first = append(first, p)
	}
	p := dialFrom(t, "127.0.0.1", addr)
	p.size = 128
	p.refused(engine.ReasonAddressFull)
	other := dialFrom(t, "127.0.0.2", addr)
	other.greet(128)
	ev.next(ctx, t)
	first[0].conn.Close()
	ev.eventFor(ctx, t, 1)
	again := dialFrom(t, "127.0.0.1", addr)
	again.greet(128)
	if n := srv.Stats().Refused[engine.RefusePerIP]; n != 1 {
		t.Errorf("refused per address: %d, want 1", n)
	}
}

// TestConnRatePerAddr: an address opens at most a burst of 2, then 1 a
// second: the third at once is refused with RateLimited; another address
// is not.
func TestConnRatePerAddr(t *testing.T) {
	t.Parallel()
	srv := startServer(t, handler.NewRouter(), engine.WithMessageSize(128), engine.WithConnRatePerAddr(0.1, 2))
	addr := srv.Addr().String()
	for range 2 {
		p := dialFrom(t, "127.0.0.3", addr)
		p.greet(128)
	}
	p := dialFrom(t, "127.0.0.3", addr)
	p.size = 128
	p.refused(engine.ReasonRateLimited)
	q := dialFrom(t, "127.0.0.4", addr)
	q.greet(128)
	if n := srv.Stats().Refused[engine.RefuseRate]; n != 1 {
		t.Errorf("refused for rate: %d, want 1", n)
	}
}
