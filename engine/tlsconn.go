// This file joins internal/tlslayer to a connection: the environment it
// runs in (the connection's counted output, its loop's wake-up, its close)
// and the log of a handshake that failed.

package engine

import (
	"crypto/tls"
	"errors"
	"net"

	"github.com/simplerpc/simplerpc/internal/tlslayer"
)

// tlsSide is the TLS of a server or a dialer.
type tlsSide struct{ side *tlslayer.Side }

func (t *tlsSide) newLayer(c *conn) layer { return &tlsConn{t: t, c: c} }

// clientConfig returns the config of a client connection: with the host
// dialled as ServerName, unless the config names one; nil for the side's.
func (t *tlsSide) clientConfig(c *conn) *tls.Config {
	cfg := t.side.Config()
	cl, ok := c.owner().(*Client)
	if cfg.ServerName != "" || !ok || cl.network == "unix" {
		return nil
	}
	host, _, err := net.SplitHostPort(cl.addr)
	if err != nil || host == "" {
		return nil
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}

// tlsConn is the layer of one TLS connection. Loop-only, but for
// tlsState.
type tlsConn struct {
	t *tlsSide
	c *conn
	l *tlslayer.Layer
}

func (w *tlsConn) start(out func([]byte) error, wake func()) error {
	c := w.c
	var local net.Addr
	if c.gc != nil {
		local = c.gc.LocalAddr()
	}
	w.l = w.t.side.New(tlslayer.Env{
		Out:  out,
		Wake: wake,
		Close: func(reason error) {
			// Queued by a task, so that it comes after the answers this
			// round queues.
			_ = c.loop.enqueue(task{kind: taskFunc, fn: func() { c.closeWith(reason) }}, nil)
		},
		Local:  local,
		Remote: c.remoteAddr(),
		Config: w.t.clientConfig(c),
	})
	err := w.l.Start()
	if err == nil {
		c.loop.woke = true // the handshake's goroutine is runnable (see loop.leave)
	}
	return w.logged(err)
}

func (w *tlsConn) input(plain, in []byte) ([]byte, int, bool, error) {
	plain, n, ready, err := w.l.Input(plain, in)
	if !ready {
		if n > 0 {
			// The handshake's goroutine has the peer's flight: it is
			// runnable, most likely on this loop's P, and should run
			// before the loop sleeps in epoll_wait (see loop.leave).
			w.c.loop.woke = true
		}
		err = w.logged(err)
	}
	return plain, n, ready, err
}

// logged logs why a handshake failed, where no callback will say it: the
// connection never became ready.
func (w *tlsConn) logged(err error) error {
	if err != nil && errors.Is(err, ErrTLSHandshake) && !errors.Is(err, ErrShutdown) {
		c := w.c
		c.side.cfg.logger.Info("simplerpc: TLS handshake failed", "conn", c.id, "remote", c.RemoteAddr(), "err", err)
	}
	return err
}

func (w *tlsConn) output(dst, p []byte) ([]byte, error) { return w.l.Output(dst, p) }

func (w *tlsConn) pending() bool { return w.l != nil && w.l.Pending() }

func (w *tlsConn) stop(err error) error {
	if w.l == nil {
		return err
	}
	return w.l.Stop(err)
}

func (w *tlsConn) tlsState() (tls.ConnectionState, bool) {
	if w.l == nil {
		return tls.ConnectionState{}, false
	}
	return w.l.ConnectionState()
}
