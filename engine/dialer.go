// This file holds the Dialer: the event loops that client connections
// share, their heartbeat, and dialing.

package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Dialer opens client connections on shared gnet event loops, so that one
// process holds thousands of connections without a goroutine each. Every
// connection it dials shares its router and options.
//
// All methods are safe for concurrent use by multiple goroutines.
type Dialer struct {
	side   side
	cli    *gnet.Client
	nextID atomic.Uint64
	conns  sync.Map // *Client -> struct{}

	closeOnce sync.Once
	stop      chan struct{}
	wgMu      sync.Mutex     // orders wg.Add after Close began against wg.Wait
	stopped   bool           // guarded by wgMu
	wg        sync.WaitGroup // heartbeat and reconnect goroutines
}

// NewDialer starts the client event loops. Close it when done.
func NewDialer(r *handler.Router, opts ...ClientOption) (*Dialer, error) {
	if r == nil {
		return nil, invalidOption("router", "nil")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o.applyClient(&cfg)
	}
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	d := &Dialer{stop: make(chan struct{})}
	d.side = side{cfg: cfg, router: r, closedErr: ErrClosed}
	d.side.initWarnings()
	cli, err := startLoops(&clientEvents{d: d}, &d.side)
	if err != nil {
		return nil, err
	}
	d.cli = cli
	if cfg.workers > 0 {
		d.side.pool = newPool(cfg.workers)
	}
	if cfg.pingInterval > 0 {
		d.wg.Add(1)
		go d.heartbeat()
	}
	return d, nil
}

// Close closes every connection of the dialer (their disconnect callbacks
// run with [ErrShutdown]) and stops its event loops. It must not be called
// from a callback.
func (d *Dialer) Close() error {
	d.closeOnce.Do(func() {
		d.side.closing.Store(true) // sends fail from now on: nothing feeds the loops while they close
		close(d.stop)
		d.side.cfg.stopTLS()
		d.wgMu.Lock()
		d.stopped = true
		d.wgMu.Unlock()
		d.conns.Range(func(k, _ any) bool {
			_ = k.(*Client).close(ErrShutdown)
			return true
		})
		d.wg.Wait()
		// The close tasks run on the loops in parallel; give them, all
		// together, a second before the loops stop.
		deadline := time.NewTimer(time.Second)
		defer deadline.Stop()
		d.conns.Range(func(k, _ any) bool {
			select {
			case <-k.(*Client).done:
				return true
			case <-deadline.C:
				return false
			}
		})
		_ = d.cli.Stop()
		d.side.cfg.waitTLS()
		if d.side.pool != nil {
			d.side.pool.stop()
		}
	})
	return nil
}

// spawn runs fn on a goroutine the dialer's Close waits for, unless the
// dialer is closing, and reports whether it did.
func (d *Dialer) spawn(fn func()) bool {
	d.wgMu.Lock()
	defer d.wgMu.Unlock()
	if d.stopped {
		return false
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		fn()
	}()
	return true
}

// heartbeat pings every connection on the interval and closes those that
// stayed silent past the timeout.
func (d *Dialer) heartbeat() {
	defer d.wg.Done()
	cfg := &d.side.cfg
	t := time.NewTicker(cfg.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		d.conns.Range(func(k, _ any) bool {
			cl := k.(*Client)
			c := cl.current()
			if c == nil || c.closed.Load() || !cl.isReady(c) {
				return true
			}
			if cfg.pingTimeout > 0 && now.UnixNano()-c.lastRecv.Load() > int64(cfg.pingTimeout) {
				c.closeWith(ErrIdle)
				return true
			}
			var obj [32]byte
			b := append(obj[:0], `{"t":`...)
			b = strconv.AppendInt(b, now.UnixNano(), 10)
			b = append(b, '}')
			_ = c.loop.enqueue(task{kind: taskSend, op: codec.OpPing, c: c}, b)
			return true
		})
	}
}

// Dial connects to addr ("127.0.0.1:30000", "tcp://...", "unix:///path",
// "tls://..." with [WithTLS], "ws://host:port/path", "wss://host:port/path"
// with [WithTLS]) and returns a ready client: the transport is up (TLS
// handshake, WebSocket upgrade), the server's first frame has told the
// message size (docs/PROTOCOL.md §3) and, [WithCredentials], the server
// has acknowledged them. Otherwise it returns why not, within the dial
// timeout ([WithDialTimeout]) or ctx: a refusal (an error wrapping
// [ErrUnauthorized], [ErrServerFull], [ErrTLSHandshake] or
// [ErrWebSocketHandshake]), or [ErrProtocol] for a peer that is no
// simplerpc server (an HTTP port, a silent one). A reconnection goes
// through the same steps in the background. [WithDialNoWait] makes it
// return once connected, holding what is sent until the size is known.
//
// opts set what is this client's own, such as [WithCredentials] and
// [WithLocalAddr]; the dialer's options give the rest.
func (d *Dialer) Dial(ctx context.Context, addr string, opts ...DialOption) (*Client, error) {
	dc := dialConfig{credentials: d.side.cfg.credentials, local: d.side.cfg.localAddr}
	for _, o := range opts {
		o.applyDial(&dc)
	}
	if err := dc.validate(); err != nil {
		return nil, err
	}
	return d.dial(ctx, addr, false, dc)
}

// validate checks what the DialOptions of one Dial set, as config's
// validate does for the dialer's.
func (dc *dialConfig) validate() error {
	if dc.credentials != nil {
		if _, err := codec.Marshal(dc.credentials); err != nil { // an object, as the -9 frame needs
			return invalidOption("WithCredentials", "%v", err)
		}
	}
	return nil
}

// dial connects a client; own makes the client close the dialer with it.
func (d *Dialer) dial(ctx context.Context, addr string, own bool, dc dialConfig) (*Client, error) {
	local := dc.local
	bare, wsLayer, isWS, err := d.side.cfg.wsAddr(addr)
	if !isWS {
		bare, err = d.side.cfg.untls(addr)
	}
	if err != nil {
		return nil, err
	}
	network, address, err := splitAddr(bare)
	if err != nil {
		return nil, err
	}
	select {
	case <-d.stop:
		return nil, fmt.Errorf("engine: dial %s: %w", addr, ErrClosed)
	default:
	}
	var laddr net.Addr
	if local != "" {
		ip := net.ParseIP(local)
		if ip == nil || network == "unix" {
			return nil, fmt.Errorf("engine: dial %s from %q: not an IP address", addr, local)
		}
		laddr = &net.TCPAddr{IP: ip}
	}
	cl := newClient(d, network, address, laddr, own, dc.credentials)
	if isWS {
		cl.layer, cl.dialed = wsLayer, make(chan error, 1)
	}
	d.conns.Store(cl, struct{}{})
	cfg := &d.side.cfg
	for backoff := cfg.backoffMin; ; backoff = min(backoff*2, cfg.backoffMax) {
		err := cl.connect(ctx)
		if err == nil {
			err = cl.awaitUpgrade(ctx)
			if err == nil && !cfg.dialNoWait {
				err = cl.awaitReady(ctx)
			}
			if err != nil {
				_ = cl.close(err)
				d.conns.Delete(cl)
				return nil, fmt.Errorf("engine: dial %s: %w", addr, err)
			}
			return cl, nil
		}
		if !cfg.retryDial {
			d.conns.Delete(cl)
			return nil, err
		}
		cfg.logger.Debug("simplerpc: dial failed, retrying", "addr", addr, "err", err)
		wait := time.NewTimer(time.Duration(rand.Int64N(int64(backoff) + 1)))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			d.conns.Delete(cl)
			return nil, fmt.Errorf("engine: dial %s: %w (last attempt: %w)", addr, ctx.Err(), err)
		case <-d.stop:
			wait.Stop()
			d.conns.Delete(cl)
			return nil, fmt.Errorf("engine: dial %s: %w", addr, ErrClosed)
		}
	}
}

// Dial connects a single client with its own event loop, closed with the
// client. See [Dialer.Dial]; use a [Dialer] for many connections.
func Dial(ctx context.Context, addr string, r *handler.Router, opts ...ClientOption) (*Client, error) {
	d, err := NewDialer(r, opts...)
	if err != nil {
		return nil, err
	}
	cl, err := d.dial(ctx, addr, true, dialConfig{credentials: d.side.cfg.credentials, local: d.side.cfg.localAddr})
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return cl, nil
}
