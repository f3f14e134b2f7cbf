// Log text shared by the subcommands: durations as text in every log
// format. (The systemd status, "serving 1 connection", is package
// service's.)
package main

import "log/slog"

// durationsAsText is a slog ReplaceAttr that writes a duration as Go
// writes it ("4s", "250ms"), not as a count of nanoseconds: slog's JSON
// handler would print "interval":4000000000. It is safe from any
// goroutine.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
