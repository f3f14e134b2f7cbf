// This file holds what a client on a blocking connection (a load
// generator, a test) needs of the same RFC 6455 code: the upgrade, read
// without reading past it, and one frame read exactly.

package wslayer

import (
	"fmt"
	"io"
	"time"

	"github.com/gobwas/ws"
)

// maxPeerFrame bounds the payload ReadFrame reads.
const maxPeerFrame = 1 << 20

// Upgrade runs a client's upgrade on the blocking connection rw: it writes
// the request for path (with Host host, offering subprotocol) and reads the
// response a byte at a time, so that nothing after it is read (the caller
// may hand the connection to an event loop). The response is checked as a
// Layer checks it; an error wraps ErrHandshake or is rw's. It is safe for
// concurrent use on distinct connections.
func Upgrade(rw io.ReadWriter, path, host, subprotocol string) error {
	cfg := &Config{Client: true, Path: path, Host: host, Subprotocol: subprotocol, MaxHeader: 4 << 10,
		Timeout: time.Hour}
	l := New(cfg, Env{
		Out:   func(b []byte) error { _, err := rw.Write(b); return err },
		Wake:  func() {},
		Close: func(error) {},
		Limit: func() int { return 0 },
	})
	if err := l.Start(); err != nil {
		return err
	}
	defer l.timer.Stop()
	var resp []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(rw, b[:]); err != nil {
			return fmt.Errorf("%w: reading the response: %w", ErrHandshake, err)
		}
		resp = append(resp, b[0])
		if _, ready, err := l.Input(resp, nil); err != nil || ready {
			return err
		}
	}
}

// ReadFrame reads one whole frame from r, exactly: its header, then its
// payload, unmasked. It refuses a payload over 1 MiB. It is safe for
// concurrent use on distinct readers.
func ReadFrame(r io.Reader) (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(r)
	if err != nil {
		return h, nil, err
	}
	if h.Length > maxPeerFrame {
		return h, nil, fmt.Errorf("%w: a frame of %d bytes", ErrProtocol, h.Length)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r, p); err != nil {
		return h, nil, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return h, p, nil
}
