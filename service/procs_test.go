package service

// This file checks what Run does to GOMAXPROCS (spareP).

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestSpareP: Run raises GOMAXPROCS to its event loops plus one when
// Go gave it no more, and says so; it leaves a GOMAXPROCS the environment
// set, and one already higher. Not parallel: it sets the process's
// GOMAXPROCS and environment (restored after).
func TestSpareP(t *testing.T) {
	old := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(old) })
	for _, c := range []struct {
		env         string
		procs, want int
		logged      bool
	}{{"", 1, 2, true}, {"", 2, 2, false}, {"", 3, 3, false}, {"1", 1, 1, false}} {
		t.Setenv("GOMAXPROCS", c.env)
		runtime.GOMAXPROCS(c.procs)
		var buf bytes.Buffer
		spareP(slog.New(slog.NewTextHandler(&buf, nil)), 1)
		if got := runtime.GOMAXPROCS(0); got != c.want || strings.Contains(buf.String(), "GOMAXPROCS raised") != c.logged {
			t.Errorf("GOMAXPROCS env %q, %d Ps, 1 loop: %d Ps after, log %q; want %d, logged %v", c.env, c.procs, got, buf.String(), c.want, c.logged)
		}
	}
}

// TestWithoutSpareP: the option keeps Run from touching GOMAXPROCS, and
// Run reads the loops from the server.
func TestWithoutSpareP(t *testing.T) {
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithEventLoops(3))
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.EventLoops(); n != 3 {
		t.Fatalf("EventLoops %d, want 3", n)
	}
	for _, c := range []struct {
		opts []Option
		keep bool
	}{{nil, false}, {[]Option{WithoutSpareP()}, true}} {
		cfg, err := newConfig(srv, c.opts)
		if err != nil || cfg.keepProcs != c.keep {
			t.Errorf("options %d: keeps GOMAXPROCS %v (%v), want %v", len(c.opts), cfg != nil && cfg.keepProcs, err, c.keep)
		}
	}
}
