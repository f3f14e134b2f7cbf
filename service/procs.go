// This file holds what Run does to GOMAXPROCS: a P beside the server's
// event loops.

package service

import (
	"log/slog"
	"os"
	"runtime"
)

// spareP leaves the Go scheduler a P beside the event loops, unless the
// GOMAXPROCS environment variable says otherwise: on a machine (or a
// container, or a core the process is pinned to) with no more CPUs than
// loops, Go would give the process as many Ps as loops, the loops would
// hold them all, and the acceptor and TLS handshakes would wait for the
// runtime's monitor (OPERATIONS.md, "CPUs: a P beside the event loops").
// Run owns the process as a service does (its signals, its notifications);
// the engine only warns.
func spareP(log *slog.Logger, loops int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if was := runtime.GOMAXPROCS(0); was <= loops {
		runtime.GOMAXPROCS(loops + 1)
		log.Info("GOMAXPROCS raised: one P beside the event loops", "was", was, "now", loops+1)
	}
}
