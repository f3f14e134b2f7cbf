// Tests that a peer cannot make the server log without bound.

package engine_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// countingHandler counts the records at or above warning level.
type countingHandler struct {
	warns *atomic.Int64
}

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.warns.Add(1)
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestNoLogAmplification: peers cannot make the server log once per frame
// or per connection. Ten of twenty connections ask for a size too small for
// 200 broadcasts: 2,000 frames are not sent to them, counted in
// Stats().Unfit, in a few log lines; a broadcast too large for the server's
// own size is an error to the caller; forty refused connections log a few
// lines, not forty.
func TestNoLogAmplification(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	var warns atomic.Int64
	ev := newConnEvents()
	srv := startServer(t, handler.NewRouter(), append(ev.options(), engine.WithMessageSize(1024),
		engine.WithMaxConns(20), engine.WithLogger(slog.New(countingHandler{&warns})))...)
	addr := srv.Addr().String()
	var small []*rawPeer
	for i := range 20 {
		p := dialRaw(t, addr)
		p.greet(1024)
		ev.next(ctx, t)
		if i%2 == 0 {
			p.write(`-2{"message_size":128}`) // smaller than the broadcasts
			if op, _ := p.read(); op != codec.OpMessageSize {
				t.Fatalf("size answer %d", op)
			}
			p.size = 128
			small = append(small, p)
		}
	}
	text := strings.Repeat("x", 500)
	for i := range 200 {
		if err := srv.SendAll(1, map[string]any{"i": i, "text": text}); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.SendAll(1, map[string]string{"text": strings.Repeat("y", 2000)}); !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Errorf("a broadcast past the server's size: %v, want ErrFrameTooLarge", err)
	}
	// A frame the small peers can take arrives after the unfit ones: they
	// were skipped, not queued.
	if err := srv.SendAll(2, map[string]int{"ok": 1}); err != nil {
		t.Fatal(err)
	}
	for _, p := range small {
		if op, obj := p.read(); op != 2 || string(obj) != `{"ok":1}` {
			t.Fatalf("small peer got %d %s", op, obj)
		}
	}
	if u := srv.Stats().Unfit; u != 2000 {
		t.Errorf("Stats().Unfit = %d, want 2000", u)
	}
	for range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, c) // the ServerFull failure, then EOF
		c.Close()
	}
	// Each warning is logged at most once a second: a run this short logs a
	// handful, where before it logged 2,040 lines.
	if n := warns.Load(); n > 10 {
		t.Errorf("%d warnings logged", n)
	}
	if warns.Load() == 0 {
		t.Error("no warning at all: the test proves nothing")
	}
}
