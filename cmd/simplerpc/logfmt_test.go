package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
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
