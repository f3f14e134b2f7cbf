// Package dial opens the load generators' connections: from chosen source
// addresses, over TCP, TLS or WebSocket, reading each server's -2 frame
// before handing a connection on.
package dial

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// Via is what a connection speaks above TCP. The zero value is plain TCP.
type Via struct {
	// TLS, if set, makes the connection TLS: a client handshake with it.
	TLS *tls.Config
	// WSPath, if set, makes the connection WebSocket: an upgrade at this
	// path, after which the -2 frame is read as a message. The connection
	// is then the raw TCP one, for the caller to frame.
	WSPath string
}

// Dialer returns a dialer from source address src ("" for any). With a
// source, the port is chosen at connect time (IP_BIND_ADDRESS_NO_PORT), so
// one port serves connections to different servers. Connections it makes
// get SO_LINGER 0 (see [One]).
func Dialer(src string, timeout time.Duration) (*net.Dialer, error) {
	d := &net.Dialer{Timeout: timeout}
	if src == "" {
		return d, nil
	}
	ip := net.ParseIP(src)
	if ip == nil {
		return nil, fmt.Errorf("dial: bad source address %q", src)
	}
	d.LocalAddr = &net.TCPAddr{IP: ip}
	d.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			const ipBindAddressNoPort = 24 // linux/in.h
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}
	return d, nil
}

// One connects to addr and checks that the server's first frame is want.
// The connection gets SO_LINGER 0: closing it sends a reset, so the
// benchmarks leave no TIME_WAIT behind to hold ports between runs.
func One(d *net.Dialer, addr string, want []byte) (net.Conn, error) {
	return OneVia(d, addr, want, Via{})
}

// OneVia is [One] over via: a TLS connection comes back as a *tls.Conn
// whose handshake is done.
func OneVia(d *net.Dialer, addr string, want []byte, via Via) (net.Conn, error) {
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.SetDeadline(time.Now().Add(d.Timeout))
	if via.TLS != nil {
		tc := tls.Client(nc, via.TLS)
		ctx, cancel := context.WithTimeout(context.Background(), d.Timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		nc = tc
	}
	if via.WSPath != "" {
		if err := wslayer.Upgrade(nc, via.WSPath, nc.RemoteAddr().String(), "simplerpc"); err != nil {
			_ = nc.Close()
			return nil, err
		}
	}
	if len(want) > 0 {
		if err := first(nc, want, via.WSPath != ""); err != nil {
			_ = nc.Close()
			return nil, err
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, nil
}

// first reads the first frame (a message with ws) and checks it is want.
func first(nc net.Conn, want []byte, isWS bool) error {
	buf := make([]byte, len(want))
	var err error
	if isWS {
		var h ws.Header
		h, buf, err = wslayer.ReadFrame(nc)
		if err == nil && (h.OpCode != ws.OpText || !h.Fin) {
			err = fmt.Errorf("a frame of opcode %d", h.OpCode)
		}
	} else {
		_, err = io.ReadFull(nc, buf)
	}
	if err != nil {
		return fmt.Errorf("reading the -2 frame: %w", err)
	}
	if !bytes.Equal(buf, want) {
		return fmt.Errorf("first frame is %.40q, want %.40q", buf, want)
	}
	return nil
}

// Many opens n connections with up to workers dials at once, connection i
// from sources[i%len(sources)] (nil: the system's choice), and hands each
// to fn, from several goroutines at once. It stops at the first error.
func Many(addr string, n, workers int, sources []string, want []byte, timeout time.Duration,
	fn func(i int, nc net.Conn) error) error {
	return ManyVia(addr, n, workers, sources, want, timeout, Via{}, fn)
}

// ManyVia is [Many] over via.
func ManyVia(addr string, n, workers int, sources []string, want []byte, timeout time.Duration, via Via,
	fn func(i int, nc net.Conn) error) error {
	if len(sources) == 0 {
		sources = []string{""}
	}
	dialers := make([]*net.Dialer, len(sources))
	for i, s := range sources {
		d, err := Dialer(s, timeout)
		if err != nil {
			return err
		}
		dialers[i] = d
	}
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				nc, err := OneVia(dialers[i%len(dialers)], addr, want, via)
				if err == nil {
					err = fn(i, nc)
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
