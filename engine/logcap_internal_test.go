package engine

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestGnetWarningsCapped: gnet warns once per event of a socket closed
// under it, thousands of times when many close at once (a handover); the
// engine logs them at most once a second, with a count.
func TestGnetWarningsCapped(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, nil))
	g := gnetLogger{l: l, warn: &repeated{msg: "gnet: warnings"}}
	for i := range 5000 {
		g.Warnf("received event of a stale connection: fd=%d", i)
	}
	lines := strings.Count(buf.String(), "\n")
	if lines < 1 || lines > 2 {
		t.Fatalf("%d lines for 5,000 warnings:\n%s", lines, buf.String())
	}
	if !strings.Contains(buf.String(), "stale connection") {
		t.Fatalf("the line does not say what gnet warned of:\n%s", buf.String())
	}
}
