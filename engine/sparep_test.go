package engine_test

// This file checks that a server and a dialer say so in their log when
// their event loops would take every P (OPERATIONS.md, "CPUs: a P beside
// the event loops").

import (
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestStartWarnsWithoutSpareP: a server whose event loops take every P
// says so in its log when it starts them (schedulerNote).
func TestStartWarnsWithoutSpareP(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	srv, err := engine.NewServer(echoRouter(), engine.WithMessageSize(128),
		engine.WithEventLoops(runtime.GOMAXPROCS(0)), engine.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(testContext(t), "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "GOMAXPROCS") {
		t.Errorf("log %q: no warning that the loops take every P", got)
	}
}

// TestDialerWarnsWithoutSpareP: so does a dialer's (schedulerNote).
func TestDialerWarnsWithoutSpareP(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	d, err := engine.NewDialer(handler.NewRouter(), engine.WithEventLoops(runtime.GOMAXPROCS(0)),
		engine.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "GOMAXPROCS") {
		t.Errorf("log %q: no warning that the loops take every P", got)
	}
}
