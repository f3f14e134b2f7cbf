// This file holds warnings that a peer could make the engine log on every
// frame or connection: each is logged at most once a second, with how many
// times it happened since.

package engine

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// repeated is a warning that may repeat without bound.
type repeated struct {
	msg  string
	n    atomic.Int64 // times since the last line
	last atomic.Int64 // unix nanoseconds of the last line
}

// warn counts the warning and logs it if none was logged in the last
// second; the line says how many times it happened since the last one.
// Nothing is counted for a logger that drops warnings. Safe from any
// goroutine.
func (r *repeated) warn(l *slog.Logger, args ...any) {
	if !l.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	r.n.Add(1)
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(time.Second) || !r.last.CompareAndSwap(last, now) {
		return
	}
	l.Warn(r.msg, append(args, "times", r.n.Swap(0))...)
}
