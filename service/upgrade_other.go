//go:build !unix

// This file holds the upgrade's stand-ins off Unix, where SIGHUP does not
// upgrade: no signal arrives and no predecessor hands anything over.

package service

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
)

// upgradeSignal returns a channel that never delivers.
func upgradeSignal() (<-chan os.Signal, func()) { return nil, func() {} }

// adoptUpgrade does nothing off Unix.
func adoptUpgrade() (*nextNotify, error) { return nil, nil }

// successor is what an upgrade gives the successor: nothing off Unix.
type successor struct {
	handover *os.File
	during   func() error
}

// startSuccessor is not supported off Unix.
func startSuccessor(context.Context, *slog.Logger, []net.Listener, []string, successor) (int, error) {
	return 0, errors.New("upgrade: not supported on this system")
}

// handoverSocket returns nil off Unix: there is no predecessor.
func handoverSocket() (*net.UnixConn, error) { return nil, nil }

// handoverPair is not supported off Unix.
func handoverPair() (*net.UnixConn, *os.File, error) {
	return nil, nil, errors.New("upgrade: handover not supported on this system")
}
