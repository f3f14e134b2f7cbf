//go:build !unix

package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
)

// upgradeSignal returns a channel that never delivers: there is no SIGHUP
// upgrade off Unix.
func upgradeSignal() (<-chan os.Signal, func()) { return nil, func() {} }

// adoptUpgrade does nothing off Unix.
func adoptUpgrade() (*nextNotify, error) { return nil, nil }

// startSuccessor is not supported off Unix.
func startSuccessor(context.Context, *slog.Logger, []net.Listener, []string) (int, error) {
	return 0, errors.New("upgrade: not supported on this system")
}
