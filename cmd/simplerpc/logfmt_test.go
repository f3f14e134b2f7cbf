package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestLogDurations: JSON logs print durations as text, not nanoseconds
// (issue 32, item 14).
func TestLogDurations(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := newLogger(&buf, format, false)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("watchdog enabled", "interval", 4*time.Second)
		want := map[string]string{"json": `"interval":"4s"`, "text": `interval=4s`}[format]
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%s log %q does not contain %s", format, buf.String(), want)
		}
	}
}

// TestStatusPlural: the systemd status says "1 connection", not "1
// connections" (issue 32, item 14).
func TestStatusPlural(t *testing.T) {
	t.Parallel()
	connected := make(chan struct{}, 1)
	srv := newEngine(t, handler.NewRouter(), engine.WithOnConnect(func(handler.Conn) { connected <- struct{}{} }))
	n := &notifier{srv: srv}
	if got, want := n.status(), "STATUS=serving 0 connections"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the server never saw the connection")
	}
	if got, want := n.status(), "STATUS=serving 1 connection"; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
}
