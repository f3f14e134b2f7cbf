// This file holds a service manager's notification socket for the tests
// of what a service tells systemd (NOTIFY_SOCKET).

package testkit

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// NotifySocket listens on a unixgram socket in a temporary directory, as
// systemd's NOTIFY_SOCKET, and returns its path and the lines of the
// datagrams it receives (READY=1, STATUS=..., one a line), in order. It
// stops when the test ends. It is safe for concurrent use: only the test
// reads the channel.
func NotifySocket(t testing.TB) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			if err != nil {
				return
			}
			for _, l := range strings.Split(strings.TrimSpace(string(b[:n])), "\n") {
				select {
				case lines <- l:
				case <-quit: // the test reads no more
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(quit); c.Close(); <-done })
	return path, lines
}
