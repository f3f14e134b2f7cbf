package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Server states.
const (
	stateNew int32 = iota
	stateRunning
	stateShutdown
)

// Server accepts connections and routes their frames through a
// [handler.Router]: the original's Server. It announces its message size
// to each connection first, gives each a net id that is never reused, and
// can send to one connection, to a group, or to all.
//
// All methods are safe for concurrent use by multiple goroutines.
type Server struct {
	side   side
	state  atomic.Int32
	nextID atomic.Uint64
	nconns atomic.Int64
	conns  registry // net id -> *conn

	loopsMu sync.Mutex // guards loops
	loops   []*loop

	groupsMu sync.RWMutex // guards groups
	groups   map[string]map[uint64]*conn

	eng    gnet.Engine
	addr   atomic.Pointer[net.Addr] // set once in OnBoot
	booted chan struct{}
	done   chan struct{} // closed when gnet.Run returns
	runErr error         // set before done is closed
	stop   chan struct{} // closed when Shutdown begins
	once   sync.Once
}

// NewServer returns a server that dispatches frames to r. It applies the
// defaults, then opts, and returns an error wrapping [ErrInvalidOption] for
// a bad option value.
func NewServer(r *handler.Router, opts ...ServerOption) (*Server, error) {
	if r == nil {
		return nil, invalidOption("router", "nil")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o.applyServer(&cfg)
	}
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	if cfg.maxConns == 0 {
		cfg.maxConns = defaultMaxConns()
	}
	s := &Server{booted: make(chan struct{}), done: make(chan struct{}), stop: make(chan struct{})}
	s.side = side{cfg: cfg, router: r}
	s.side.opened = s.opened
	s.side.closed = s.closed
	return s, nil
}

// protoAddr turns "host:port", "tcp://host:port" or "unix:///path" into
// gnet's form.
func protoAddr(addr string) (network, proto string, err error) {
	network, rest, ok := strings.Cut(addr, "://")
	if !ok {
		network, rest = "tcp", addr
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return "", "", fmt.Errorf("engine: address %q: unsupported network %q", addr, network)
	}
	if rest == "" {
		return "", "", fmt.Errorf("engine: address %q: empty", addr)
	}
	return network, network + "://" + rest, nil
}

// Serve listens on addr ("127.0.0.1:30000", "tcp://...", "unix:///path")
// and serves until ctx is cancelled or [Server.Shutdown] is called: the
// original's blocking start(). It returns [ErrServerClosed] after a
// shutdown, or the error that stopped it. When ctx is cancelled the server
// shuts down gracefully, waiting up to 5 seconds for queued frames to go out.
func (s *Server) Serve(ctx context.Context, addr string) error {
	if err := s.Start(ctx, addr); err != nil {
		return err
	}
	<-s.done
	return s.runErr
}

// Start listens on addr and returns once the server accepts connections;
// the server runs in the background until ctx is cancelled or
// [Server.Shutdown] is called. A server can be started once.
func (s *Server) Start(ctx context.Context, addr string) error {
	network, proto, err := protoAddr(addr)
	if err != nil {
		return err
	}
	if !s.state.CompareAndSwap(stateNew, stateRunning) {
		return errors.New("engine: server already started")
	}
	cfg := &s.side.cfg
	opts := []gnet.Option{
		gnet.WithNumEventLoop(cfg.loops),
		gnet.WithReuseAddr(true),
		gnet.WithLogger(gnetLogger{cfg.logger}),
		gnet.WithReadBufferCap(64 << 10),
		gnet.WithWriteBufferCap(16 << 10),
	}
	if network != "unix" {
		nd := gnet.TCPNoDelay
		if !cfg.noDelay {
			nd = gnet.TCPDelay
		}
		opts = append(opts, gnet.WithTCPNoDelay(nd))
		if cfg.keepAlive > 0 {
			opts = append(opts, gnet.WithTCPKeepAlive(cfg.keepAlive))
		}
	}
	if cfg.workers > 0 {
		s.side.pool = newPool(cfg.workers)
	}
	go func() {
		err := gnet.Run(&serverEvents{s: s}, proto, opts...)
		if err == nil && s.state.Load() != stateShutdown {
			err = ErrEngineStopped
			cfg.logger.Error("simplerpc: event loop stopped on its own (an accept error such as EMFILE?)")
		}
		if err == nil {
			err = ErrServerClosed
		}
		s.runErr = err
		s.closeAll(ErrShutdown)
		close(s.done)
	}()
	select {
	case <-s.booted:
	case <-s.done:
		return fmt.Errorf("engine: listen on %s: %w", addr, s.runErr)
	}
	if cfg.idleTimeout > 0 {
		go s.sweepIdle()
	}
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = s.Shutdown(sctx)
		case <-s.done:
		}
	}()
	return nil
}

// Addr returns the address the server listens on, with the port the system
// chose for ":0". It is nil before [Server.Start] returns.
func (s *Server) Addr() net.Addr {
	if a := s.addr.Load(); a != nil {
		return *a
	}
	return nil
}

// Len returns the number of open connections.
func (s *Server) Len() int { return int(s.nconns.Load()) }

// Stats are counters of a running server.
type Stats struct {
	// Conns is the number of open connections.
	Conns int
	// Dropped counts frames dropped for slow consumers under [SlowDrop].
	Dropped uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{Conns: s.Len(), Dropped: s.side.dropped.Load()}
}

// Conn returns the open connection with net id id.
func (s *Server) Conn(id uint64) (handler.Conn, bool) {
	c := s.conns.load(id)
	if c == nil {
		return nil, false
	}
	return c, true
}

func (s *Server) lookup(id uint64) (*conn, error) {
	if s.state.Load() == stateShutdown {
		return nil, ErrServerClosed
	}
	c := s.conns.load(id)
	if c == nil {
		return nil, fmt.Errorf("%w: net id %d", ErrUnknownConn, id)
	}
	return c, nil
}

// Send sends v on opcode op to the connection with net id id: the
// original's rpc(net_id, ...). An unknown or closed id returns an error
// wrapping [ErrUnknownConn] or [ErrClosed]; the frame goes nowhere else.
func (s *Server) Send(id uint64, op codec.Opcode, v any) error {
	c, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d: %w", op, err)
	}
	return c.Send(op, v)
}

// SendRaw sends the encoded JSON object obj to connection id; obj is copied.
func (s *Server) SendRaw(id uint64, op codec.Opcode, obj []byte) error {
	c, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d: %w", op, err)
	}
	return c.SendRaw(op, obj)
}

// Call sends a request to connection id and waits for the reply, decoding
// it into resp. See [handler.Conn] for the rules.
func (s *Server) Call(ctx context.Context, id uint64, op codec.Opcode, req, resp any) error {
	c, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: call opcode %d: %w", op, err)
	}
	return c.Call(ctx, op, req, resp)
}

// CallAsync sends a request to connection id without waiting: done runs
// once with the outcome, as for [handler.Conn]'s CallAsync. It is safe for
// concurrent use, from inline callbacks too.
func (s *Server) CallAsync(ctx context.Context, id uint64, op codec.Opcode, req, resp any, done func(error)) error {
	c, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: call opcode %d: %w", op, err)
	}
	return c.CallAsync(ctx, op, req, resp, done)
}

// SendAll sends v on opcode op to every open connection: the original's
// rpc_all. The JSON is encoded once; each event loop gets one task that
// writes the frame to each of its connections.
func (s *Server) SendAll(op codec.Opcode, v any) error {
	return s.sendShared(op, v, 0, "")
}

// SendAllRaw sends the encoded JSON object obj on opcode op to every open
// connection; obj is validated and copied (a broadcast relayed as received
// is not re-encoded).
func (s *Server) SendAllRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to all: %w", op, err)
	}
	return s.sendSharedObj(op, append([]byte(nil), obj...), 0, "")
}

// Done returns a channel closed once the server has stopped: after
// Shutdown, or when its event loop stopped on its own. [Server.Err] then
// says why.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns nil while the server runs, then what Serve returns:
// [ErrServerClosed] after a shutdown, [ErrEngineStopped] if the event loop
// stopped on its own.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.runErr
	default:
		return nil
	}
}

// SendAllExcept sends v to every open connection but the one with net id
// except (typically the sender of a chat message).
func (s *Server) SendAllExcept(except uint64, op codec.Opcode, v any) error {
	return s.sendShared(op, v, except, "")
}

func (s *Server) sendShared(op codec.Opcode, v any, except uint64, group string) error {
	obj, err := codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to all: %w", op, err)
	}
	return s.sendSharedObj(op, obj, except, group)
}

// sendSharedObj queues one task per loop for a valid, owned object.
func (s *Server) sendSharedObj(op codec.Opcode, obj []byte, except uint64, group string) error {
	if s.state.Load() == stateShutdown {
		return fmt.Errorf("engine: send opcode %d to all: %w", op, ErrServerClosed)
	}
	if len(obj)+12 > s.side.cfg.maxSize {
		return fmt.Errorf("engine: send opcode %d to all: %w", op, codec.ErrFrameTooLarge)
	}
	var members map[*loop][]*conn
	if group != "" {
		members = s.groupMembers(group)
	}
	s.loopsMu.Lock()
	loops := append([]*loop(nil), s.loops...)
	s.loopsMu.Unlock()
	for _, l := range loops {
		sh := &shared{obj: obj, exclude: except}
		if group != "" {
			if sh.members = members[l]; sh.members == nil {
				continue
			}
		}
		_ = l.enqueue(task{kind: taskBroadcast, op: op, shared: sh}, nil)
	}
	return nil
}

// loopFor returns our state for a gnet loop, creating it on first use.
func (s *Server) loopFor(el gnet.EventLoop) *loop {
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	for _, l := range s.loops {
		if l.el == el {
			return l
		}
	}
	l := newLoop(&s.side, el)
	s.loops = append(s.loops, l)
	return l
}

// opened registers a new connection; on its loop.
func (s *Server) opened(c *conn) {
	c.loop.add(c)
	s.conns.store(c)
}

// closed unregisters a connection; on its loop.
func (s *Server) closed(c *conn, _ error) {
	c.loop.remove(c)
	s.conns.remove(c.id)
	s.nconns.Add(-1)
	s.leaveGroups(c)
}

// Shutdown stops the server gracefully: it stops accepting, lets the frames
// already queued go out, closes every connection (the disconnect callbacks
// run with [ErrShutdown]) and stops the event loops. Sends made once it has
// begun fail with [ErrServerClosed]. If ctx ends first, the remaining
// connections are closed at once and ctx's error is returned. Serve then
// returns [ErrServerClosed].
func (s *Server) Shutdown(ctx context.Context) error {
	switch s.state.Swap(stateShutdown) {
	case stateNew:
		close(s.done)
		return nil
	case stateShutdown:
		select {
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.side.closing.Store(true)
	s.once.Do(func() { close(s.stop) })
	err := s.drain(ctx)
	s.closeAll(ErrShutdown)
	// Wait for the disconnect callbacks to have run on the loops.
	for s.nconns.Load() > 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	// gnet's Engine.Stop polls every 500 ms; Run returning (s.done) is the
	// real signal, after which the poller is cancelled.
	stopCtx, cancelStop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = s.eng.Stop(stopCtx); close(stopped) }()
	select {
	case <-s.done:
	case <-ctx.Done():
		err = ctx.Err()
		<-s.done
	}
	cancelStop()
	<-stopped
	if s.side.pool != nil {
		s.side.pool.stop()
	}
	if err != nil {
		return fmt.Errorf("engine: shutdown: %w", err)
	}
	return nil
}

// Close stops the server at once, dropping what is queued. It is Shutdown
// with an expired context.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// drain waits until every loop has written its queue and gnet's outbound
// buffers are empty, or ctx ends.
func (s *Server) drain(ctx context.Context) error {
	for {
		s.loopsMu.Lock()
		loops := append([]*loop(nil), s.loops...)
		s.loopsMu.Unlock()
		var pending atomic.Int64
		var wg sync.WaitGroup
		for _, l := range loops {
			wg.Add(1)
			err := l.enqueue(task{kind: taskFunc, fn: func() {
				defer wg.Done()
				l.flush() // frames built earlier in this round
				for _, c := range l.conns {
					n := int64(c.gc.OutboundBuffered()+len(c.out)) + c.queued.Load()
					if x := c.x.Load(); x != nil {
						c.releaseCalls()
						n += x.callBytes.Load() - x.callHeld // requests not yet written
					}
					pending.Add(n)
				}
			}}, nil)
			if err != nil {
				wg.Done()
			}
		}
		waitDone := make(chan struct{})
		go func() { wg.Wait(); close(waitDone) }()
		select {
		case <-waitDone:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return nil
		}
		if pending.Load() == 0 {
			return nil
		}
		select {
		case <-time.After(2 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// closeAll closes every connection with reason.
func (s *Server) closeAll(reason error) {
	s.loopsMu.Lock()
	loops := append([]*loop(nil), s.loops...)
	s.loopsMu.Unlock()
	for _, l := range loops {
		_ = l.enqueue(task{kind: taskFunc, fn: func() {
			for i := len(l.conns) - 1; i >= 0; i-- {
				if i < len(l.conns) {
					l.conns[i].closeNow(reason)
				}
			}
		}}, nil)
	}
}

// sweepIdle closes connections that received nothing for the idle timeout.
func (s *Server) sweepIdle() {
	d := s.side.cfg.idleTimeout
	t := time.NewTicker(max(d/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.done:
			return
		case <-t.C:
		}
		deadline := time.Now().Add(-d).UnixNano()
		s.loopsMu.Lock()
		loops := append([]*loop(nil), s.loops...)
		s.loopsMu.Unlock()
		for _, l := range loops {
			_ = l.enqueue(task{kind: taskFunc, fn: func() {
				for i := len(l.conns) - 1; i >= 0; i-- {
					if i < len(l.conns) && l.conns[i].lastRecv.Load() < deadline {
						l.conns[i].closeNow(ErrIdle)
					}
				}
			}}, nil)
		}
	}
}

// serverEvents adapts the server to gnet's callbacks. Every callback runs
// on an event loop, except OnBoot and OnShutdown.
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
	l := s.loopFor(gc.EventLoop())
	c := newConn(&s.side, l, gc, s.nextID.Add(1))
	c.inSize = cfg.size
	c.setOutSize(cfg.size)
	gc.SetContext(c)
	l.enter()
	s.opened(c)
	if out, err := codec.AppendMessageSize(l.buffer(), c.outSize, c.outSize); err == nil {
		c.out = out
		l.dirty = append(l.dirty, c)
	}
	cfg.logger.Debug("simplerpc: connection opened", "conn", c.id, "remote", c.RemoteAddr())
	c.dispatch(job{kind: jobConnect}, nil)
	l.leave()
	return nil, gnet.None
}

func (e *serverEvents) OnTraffic(gc gnet.Conn) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.Close
	}
	c.traffic()
	return gnet.None
}

func (e *serverEvents) OnClose(gc gnet.Conn, err error) gnet.Action {
	c, ok := gc.Context().(*conn)
	if !ok {
		return gnet.None
	}
	c.onClose(err)
	return gnet.None
}

// traffic handles what arrived on a connection: every complete frame, up
// to the per-wake cap, decoded straight from gnet's buffer.
func (c *conn) traffic() {
	l := c.loop
	gc := c.gc
	l.enter()
	// gnet may have written requests from its buffer since the last look.
	c.releaseCalls()
	if cfg := &c.side.cfg; cfg.idleTimeout > 0 || cfg.pingTimeout > 0 {
		// Read only by the idle sweep and the heartbeat: a clock read per
		// read is not free on every machine.
		c.lastRecv.Store(time.Now().UnixNano())
	}
	for n := 0; !c.closed.Load(); n++ {
		if c.inSize == 0 {
			if !c.client.discover(c) {
				break
			}
			continue
		}
		if gc.InboundBuffered() < c.inSize {
			break
		}
		if n == c.side.cfg.maxPerWake {
			_ = gc.Wake(nil)
			break
		}
		buf, err := gc.Peek(c.inSize)
		if err != nil {
			break
		}
		size := c.inSize
		c.handleFrame(buf)
		if c.closed.Load() {
			break // gnet released the buffers when it closed the connection
		}
		_, _ = gc.Discard(size)
	}
	l.leave()
}

// onClose runs once when gnet closes the connection, on its loop.
func (c *conn) onClose(err error) {
	if c.closed.Swap(true) {
		return
	}
	var reason error
	if x := c.x.Load(); x != nil {
		reason = x.closeReason
	}
	if reason == nil {
		switch {
		case err == nil:
			reason = ErrLocalClose
		case errors.Is(err, io.EOF):
			reason = io.EOF
		default:
			reason = err
		}
	}
	c.closeRoom(fmt.Errorf("%w: %w", ErrClosed, reason)) // calls waiting for room fail now
	l := c.loop
	l.enter()
	// Calls in flight fail first: an asynchronous call's done runs in this
	// round, before the disconnect callback.
	c.failAll(fmt.Errorf("%w: %w", ErrClosed, reason))
	c.side.closed(c, reason)
	c.side.cfg.logger.Debug("simplerpc: connection closed", "conn", c.id, "reason", reason)
	c.dispatch(job{kind: jobDisconnect, reason: reason}, nil)
	c.out = nil
	l.leave()
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

// SetMessageSize changes the frame size of the connection with net id id
// (docs/PROTOCOL.md §3): the server sends -2 at the current size and
// switches its outbound size right after; the peer answers with its own -2
// and both directions then use n. n must lie within the size bounds.
func (s *Server) SetMessageSize(id uint64, n int) error {
	c, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("engine: set message size: %w", err)
	}
	return c.setMessageSize(n)
}
