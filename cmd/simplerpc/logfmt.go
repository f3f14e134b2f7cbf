// Log and status text shared by the subcommands: durations as text in
// every log format, and counts with their noun in the right number.
package main

import (
	"fmt"
	"log/slog"
)

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

// countOf returns n and noun, with an "s" unless n is 1: "1 connection",
// "2 connections".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
