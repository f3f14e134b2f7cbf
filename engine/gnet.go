// This file holds the adapters from gnet's callbacks and logger to the
// server, the dialer and their connections.
package engine

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
)

// serverEvents adapts the server to gnet's callbacks. Every callback runs
// on an event loop, except OnBoot.
type serverEvents struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *serverEvents) OnBoot(eng gnet.Engine) gnet.Action {
	s := e.s
	s.eng = eng
	if fd, err := eng.Dup(); err == nil {
		f := os.NewFile(uintptr(fd), "listener")
		if ln, err := net.FileListener(f); err == nil {
			a := ln.Addr()
			s.addr.Store(&a)
			_ = ln.Close()
		}
		_ = f.Close()
	}
	close(s.booted)
	return gnet.None
}

func (e *serverEvents) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	cfg := &s.side.cfg
	if s.state.Load() == stateShutdown {
		return nil, gnet.Close
	}
	if s.nconns.Add(1) > int64(cfg.maxConns) {
		s.nconns.Add(-1)
		f, _ := codec.AppendFailure(nil, cfg.size, ReasonServerFull, "Server is full")
		cfg.logger.Warn("simplerpc: refused a connection: server full", "remote", gc.RemoteAddr(), "max", cfg.maxConns)
		return f, gnet.Close
	}
	c := newConn(&s.side, s, gc, s.newID())
	c.loop = s.side.loopFor(gc.EventLoop())
	c.inSize = cfg.size
	c.setOutSize(cfg.size)
	gc.SetContext(c)
	c.open(cfg.newLayer)
	return nil, gnet.None
}

func (e *serverEvents) OnTraffic(gc gnet.Conn) gnet.Action {
	if c, ok := gc.Context().(*conn); ok {
		c.traffic()
		return gnet.None
	}
	return gnet.Close
}

func (e *serverEvents) OnClose(gc gnet.Conn, err error) gnet.Action {
	if c, ok := gc.Context().(*conn); ok {
		c.onClose(err)
	}
	return gnet.None
}

// clientEvents adapts a dialer to gnet's client callbacks.
type clientEvents struct {
	gnet.BuiltinEventEngine
	d *Dialer
}

func (e *clientEvents) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	c, ok := gc.Context().(*conn)
	if !ok {
		return nil, gnet.Close
	}
	c.gc, c.io = gc, gc
	c.loop = e.d.side.loopFor(gc.EventLoop())
	c.open(e.d.side.cfg.newLayer)
	return nil, gnet.None
}

func (e *clientEvents) OnTraffic(gc gnet.Conn) gnet.Action {
	if c, ok := gc.Context().(*conn); ok {
		c.traffic()
	}
	return gnet.None
}

func (e *clientEvents) OnClose(gc gnet.Conn, err error) gnet.Action {
	if c, ok := gc.Context().(*conn); ok && c.loop != nil {
		c.onClose(err)
	}
	return gnet.None
}

// open starts a new connection on its loop: its layer's handshake, if it
// has one, or at once what its owner does with a ready connection.
func (c *conn) open(newLayer func(*conn) layer) {
	l := c.loop
	l.enter()
	defer l.leave()
	if newLayer != nil {
		c.tl = newLayered(c.gc, newLayer(c))
		c.io = c.tl
		// A wake may come after the connection closed: gnet has released
		// its buffers then.
		pump := func() {
			if !c.closed.Load() {
				c.traffic()
			}
		}
		wake := func() { _ = l.enqueue(task{kind: taskFunc, fn: pump}, nil) }
		if err := c.tl.l.start(func(b []byte) error { _, err := c.gc.Write(b); return err }, wake); err != nil {
			c.closeNow(err)
		}
		return
	}
	c.started = c.owner.ready(c)
}

// gnetLogger sends gnet's log lines to our logger: debug for its chatter,
// error for its errors.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Infof(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Warnf(format string, args ...any) {
	g.l.Warn("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
