// This file holds the adapters from gnet's callbacks and logger to the
// server, the dialer and their connections, and the start of their event
// loops.

package engine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
)

// serverEvents adapts the server to gnet's callbacks, on the event loops
// of a gnet client engine: the server accepts on its own (accept.go) and
// enrolls each connection, created beforehand, as its context.
type serverEvents struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *serverEvents) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	s := e.s
	cfg := &s.side.cfg
	c, ok := gc.Context().(*conn)
	if !ok || s.state.Load() == stateShutdown {
		s.side.stats.refused[refuseShutdown].Add(1)
		gc.SetContext(nil) // no OnClose work for a connection never opened
		return nil, gnet.Close
	}
	if s.nconns.Add(1) > int64(cfg.maxConns) {
		s.nconns.Add(-1)
		s.side.stats.refused[refuseFull].Add(1)
		gc.SetContext(nil) // no OnClose work for a refused connection
		f, _ := codec.AppendFailure(nil, cfg.size, ReasonServerFull, "Server is full")
		s.side.warnFull.warn(cfg.logger, "last", c.RemoteAddr(), "max", cfg.maxConns)
		return f, gnet.Close
	}
	c.id = s.newID()
	c.gc = gc
	c.loop = s.side.loopFor(gc.EventLoop())
	c.loop.stats.accepted.Add(1)
	c.inSize = int32(cfg.size)
	c.setOutSize(cfg.size)
	c.open(c.layerMaker())
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
	if c, ok := gc.Context().(*conn); ok && c.loop != nil {
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
	c.gc = gc
	c.loop = e.d.side.loopFor(gc.EventLoop())
	c.open(c.layerMaker()) // the client's: TLS, WebSocket or none
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

// startLoops starts the event loops of a server or a dialer: a gnet
// client engine, which takes connections made elsewhere (accepted by the
// server, dialed by a client) into its loops.
func startLoops(events gnet.EventHandler, s *side) (*gnet.Client, error) {
	cfg := &s.cfg
	opts := []gnet.Option{
		gnet.WithNumEventLoop(cfg.loops),
		gnet.WithLogger(gnetLogger{l: cfg.logger, warn: &s.warnGnet}),
		gnet.WithReadBufferCap(64 << 10),
		gnet.WithWriteBufferCap(16 << 10),
	}
	if !cfg.noDelay {
		opts = append(opts, gnet.WithTCPNoDelay(gnet.TCPDelay))
	}
	if cfg.keepAlive > 0 {
		opts = append(opts, gnet.WithTCPKeepAlive(cfg.keepAlive))
	}
	cli, err := gnet.NewClient(events, opts...)
	if err == nil {
		err = cli.Start()
	}
	if err != nil {
		return nil, fmt.Errorf("engine: start event loops: %w", err)
	}
	if note := schedulerNote(runtime.GOMAXPROCS(0), cfg.loops); note != "" {
		cfg.logger.Warn("simplerpc: " + note)
	}
	return cli, nil
}

// gnetLogger sends gnet's log lines to our logger: debug for its chatter,
// error for its errors, and its warnings at most once a second with a
// count: gnet warns once per event of a socket closed under it ("received
// event of a stale connection"), thousands of times when many close at
// once, as in a handover.
type gnetLogger struct {
	l    *slog.Logger
	warn *repeated
}

func (g gnetLogger) Debugf(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Infof(format string, args ...any) {
	g.l.Debug("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Warnf(format string, args ...any) {
	if g.l.Enabled(context.Background(), slog.LevelWarn) {
		g.warn.warn(g.l, "last", fmt.Sprintf(format, args...))
	}
}
func (g gnetLogger) Errorf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}
func (g gnetLogger) Fatalf(format string, args ...any) {
	g.l.Error("gnet: " + fmt.Sprintf(format, args...))
}

// schedulerNote returns why the Go scheduler may run the goroutines
// beside a server's or a dialer's event loops late, or "" when it will
// not; startLoops logs it. Each event loop holds a P (GOMAXPROCS) while it
// runs and while it waits in gnet's epoll_wait; with no P beside the
// loops, a goroutine that waits in Go's netpoller (the acceptor, a
// backend's, the application's network I/O) is woken only when the
// runtime's monitor polls the network, every 10 ms, and then waits for a
// loop to yield. Measured on one core under load: a new connection's
// cycle took 10 ms (median) instead of 1 ms, and full TLS handshakes ran
// at 0.7x instead of 1.0x (OPERATIONS.md, "CPUs: a P beside the event
// loops").
func schedulerNote(procs, loops int) string {
	if procs > loops {
		return ""
	}
	return fmt.Sprintf("GOMAXPROCS is %d for %d event loop(s): under load, new connections, TLS handshakes and "+
		"other goroutines wait up to 10-20 ms for the Go scheduler; set GOMAXPROCS to %d or more "+
		"(OPERATIONS.md, CPUs: a P beside the event loops)", procs, loops, loops+1)
}
