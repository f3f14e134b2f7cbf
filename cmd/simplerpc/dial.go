package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
)

// connsPerSource is how many connections bench opens from one source
// address before it adds another: below Linux's default ephemeral port
// range (32768-60999, 28232 ports), with room for other programs.
const connsPerSource = 20000

// dialWorkers bounds the goroutines that dial during bench's set-up. The
// connections themselves have no goroutine: they live on the dialer's
// event loops.
const dialWorkers = 16

// defaultMaxOutbound is the engine's default outbound cap per connection
// (engine.WithMaxOutbound).
const defaultMaxOutbound = 4 << 20

// defaultMaxInbound is the engine's default cap on what a paused
// connection holds unread (engine.WithMaxInbound).
const defaultMaxInbound = 16 << 20

// sizeOptions let the tool's clients take any message size the codec
// allows instead of the engine's default bounds (up to 64 KiB), so that a
// server started with serve --max-size is reachable too. The engine wants
// the outbound cap to hold the largest frame.
func sizeOptions() []engine.ClientOption {
	return []engine.ClientOption{
		engine.WithSizeBounds(codec.MinMessageSize, codec.MaxMessageSize),
		engine.WithMaxOutbound(codec.MaxMessageSize, engine.SlowClose),
	}
}

// sourceAddrs returns the local addresses to dial from, round robin: ""
// (the system's choice) for one source, else 127.0.0.2, 127.0.0.3, ...
// forced is --sources; 0 picks one source per connsPerSource connections
// when the target is an IPv4 loopback address, else one.
func sourceAddrs(addr string, conns, forced int) ([]string, error) {
	loopback := isLoopback4(addr)
	n := forced
	if n == 0 {
		n = 1
		if loopback {
			n = (conns + connsPerSource - 1) / connsPerSource
		}
	}
	if n <= 1 {
		return []string{""}, nil
	}
	if !loopback {
		return nil, usagef("--sources %d needs an IPv4 loopback target (127.x.y.z or localhost), not %q", n, addr)
	}
	// 127.0.0.2 up to 127.255.255.254.
	const first, last = 0x7f000002, 0x7ffffffe
	if n > last-first+1 {
		return nil, usagef("--sources %d: the loopback range has %d addresses to spare", n, last-first+1)
	}
	out := make([]string, n)
	for i := range out {
		v := uint32(first + i)
		out[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
	}
	return out, nil
}

// isLoopback4 reports whether addr names an IPv4 loopback address.
func isLoopback4(addr string) bool {
	network, rest, ok := strings.Cut(addr, "://")
	if !ok {
		network, rest = "tcp", addr
	}
	var host string
	switch network {
	case "tcp", "tcp4", "tls":
		h, _, err := net.SplitHostPort(rest)
		if err != nil {
			return false
		}
		host = h
	case "ws", "wss":
		u, err := url.Parse(addr)
		if err != nil {
			return false
		}
		host = u.Hostname()
	default:
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Is4() && ip.IsLoopback()
}

// isFDLimit reports whether err is the process or the system running out
// of file descriptors.
func isFDLimit(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// dialResult is what dialAll made.
type dialResult struct {
	clients []*engine.Client
	// stopped explains why dialing stopped short, or is nil.
	stopped error
}

// dialAll opens n connections to addr from the sources, round robin, with
// a few goroutines. It stops at the first error: a file-descriptor limit
// or a local port shortage leaves the connections already made, which the
// caller may use; any other error before the first connection fails.
func dialAll(ctx context.Context, d *engine.Dialer, addr string, sources []string, n int, stderr io.Writer) (dialResult, error) {
	made := make([]*engine.Client, n)
	var next atomic.Int64
	var stop atomic.Bool
	var mu sync.Mutex // guards firstErr
	var firstErr error
	var wg sync.WaitGroup
	for range min(n, dialWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				cl, err := d.Dial(ctx, addr, engine.WithLocalAddr(sources[i%len(sources)]))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop.Store(true)
					return
				}
				made[i] = cl
			}
		}()
	}
	wg.Wait()
	var res dialResult
	for _, cl := range made {
		if cl != nil {
			res.clients = append(res.clients, cl)
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("opened %d of %d connections: %w (see --timeout)", len(res.clients), n, err)
	}
	if firstErr == nil {
		return res, nil
	}
	soft, hard := fdLimit()
	switch {
	case isFDLimit(firstErr):
		res.stopped = fmt.Errorf("out of file descriptors after %d connections (RLIMIT_NOFILE soft %d, hard %d): "+
			"raise it with 'ulimit -n' or ask for fewer --conns", len(res.clients), soft, hard)
	case errors.Is(firstErr, syscall.EADDRNOTAVAIL):
		res.stopped = fmt.Errorf("out of local ports after %d connections from %d source address(es): "+
			"use more --sources", len(res.clients), len(sources))
	case len(res.clients) == 0:
		return res, fmt.Errorf("cannot connect to %s: %w", addr, dialCause(firstErr))
	default:
		res.stopped = fmt.Errorf("dialing stopped after %d connections: %w", len(res.clients), firstErr)
	}
	if len(res.clients) == 0 {
		return res, res.stopped
	}
	fmt.Fprintf(stderr, "warning: %v; going on with %d connections\n", res.stopped, len(res.clients))
	return res, nil
}

// waitReady waits until each client knows its message size, or ctx ends
// (its deadline is the end of the set-up, timeout after its start). It
// returns the ready clients; the others are closed. Clients that the
// server closed first are counted and the first reason is reported.
func waitReady(ctx context.Context, clients []*engine.Client, timeout time.Duration, stderr io.Writer) ([]*engine.Client, error) {
	ready := clients[:0:0]
	var closed int
	var firstReason error
	for i, cl := range clients {
		select {
		case <-cl.Ready():
			ready = append(ready, cl)
		case <-cl.Done():
			if isReady(cl) { // ready, then closed at once: select chose at random
				ready = append(ready, cl)
				continue
			}
			closed++
			if firstReason == nil {
				firstReason = cl.Err()
			}
		case <-ctx.Done():
			for _, rest := range clients[i:] {
				_ = rest.Close()
			}
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ready, ctx.Err()
			}
			return ready, fmt.Errorf("%d of %d connections did not learn the message size within --timeout %v",
				len(clients)-len(ready)-closed, len(clients), timeout)
		}
	}
	if closed > 0 {
		fmt.Fprintf(stderr, "warning: the server closed %d connections before announcing its message size "+
			"(first: %v); it may be at its connection limit (serve --max-conns, ulimit -n)\n", closed, firstReason)
	}
	if len(ready) == 0 {
		return nil, fmt.Errorf("no connection became ready (first: %v)", firstReason)
	}
	return ready, nil
}
