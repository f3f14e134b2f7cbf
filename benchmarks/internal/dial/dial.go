// Package dial opens the load generators' connections: from chosen source
// addresses, reading each server's -2 frame before handing a connection
// on.
package dial

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

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
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if len(want) == 0 {
		return nc, nil
	}
	buf := make([]byte, len(want))
	_ = nc.SetReadDeadline(time.Now().Add(d.Timeout))
	if _, err := io.ReadFull(nc, buf); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("reading the -2 frame: %w", err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	if string(buf) != string(want) {
		_ = nc.Close()
		return nil, fmt.Errorf("first frame is %.40q, want %.40q", buf, want)
	}
	return nc, nil
}

// Many opens n connections with up to workers dials at once, connection i
// from sources[i%len(sources)] (nil: the system's choice), and hands each
// to fn, from several goroutines at once. It stops at the first error.
func Many(addr string, n, workers int, sources []string, want []byte, timeout time.Duration,
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
				nc, err := One(dialers[i%len(dialers)], addr, want)
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
