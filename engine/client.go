package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/time/rate"

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

	loopsMu sync.Mutex // guards loops
	loops   []*loop

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
	d.side = side{cfg: cfg, router: r}
	d.side.closed = d.closed
	gopts := []gnet.Option{
		gnet.WithNumEventLoop(cfg.loops),
		gnet.WithLogger(gnetLogger{cfg.logger}),
		gnet.WithReadBufferCap(64 << 10),
		gnet.WithWriteBufferCap(16 << 10),
	}
	if !cfg.noDelay {
		gopts = append(gopts, gnet.WithTCPNoDelay(gnet.TCPDelay))
	}
	if cfg.keepAlive > 0 {
		gopts = append(gopts, gnet.WithTCPKeepAlive(cfg.keepAlive))
	}
	cli, err := gnet.NewClient(&clientEvents{d: d}, gopts...)
	if err != nil {
		return nil, fmt.Errorf("engine: new client: %w", err)
	}
	if err := cli.Start(); err != nil {
		return nil, fmt.Errorf("engine: start client: %w", err)
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
		close(d.stop)
		d.wgMu.Lock()
		d.stopped = true
		d.wgMu.Unlock()
		d.conns.Range(func(k, _ any) bool {
			_ = k.(*Client).close(ErrShutdown)
			return true
		})
		d.wg.Wait()
		// Give the loops the chance to run the close tasks before stopping.
		d.conns.Range(func(k, _ any) bool {
			select {
			case <-k.(*Client).done:
			case <-time.After(time.Second):
			}
			return true
		})
		_ = d.cli.Stop()
		if d.side.pool != nil {
			d.side.pool.stop()
		}
	})
	return nil
}

func (d *Dialer) loopFor(el gnet.EventLoop) *loop {
	d.loopsMu.Lock()
	defer d.loopsMu.Unlock()
	for _, l := range d.loops {
		if l.el == el {
			return l
		}
	}
	l := newLoop(&d.side, el)
	d.loops = append(d.loops, l)
	return l
}

// closed runs on the loop when one of the dialer's connections closes.
func (d *Dialer) closed(c *conn, reason error) {
	c.client.connClosed(c, reason)
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
			if c == nil || c.closed.Load() || !c.ready.Load() {
				return true
			}
			if cfg.pingTimeout > 0 && now.UnixNano()-c.lastRecv.Load() > int64(cfg.pingTimeout) {
				_ = c.closeWith(ErrIdle)
				return true
			}
			var obj [32]byte
			b := append(obj[:0], `{"t":`...)
			b = appendUint(b, uint64(now.UnixNano()))
			b = append(b, '}')
			_ = c.loop.enqueue(task{kind: taskSend, op: codec.OpPing, c: c}, b)
			return true
		})
	}
}

// Dial connects to addr ("127.0.0.1:30000", "tcp://...", "unix:///path")
// and returns once the TCP connection is up. The message size arrives in
// the server's first frame (docs/PROTOCOL.md §3); frames sent before then
// are held and sent once it is known ([Client.Ready] tells when). ctx bounds
// the connection attempt only.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Client, error) {
	return d.DialFrom(ctx, "", addr)
}

// DialFrom is [Dialer.Dial] from the local IP address local ("" lets the
// system choose). A load generator spreads its connections over several
// loopback sources (127.0.0.2, 127.0.0.3, ...) to get past the ephemeral
// port range of one source address.
func (d *Dialer) DialFrom(ctx context.Context, local, addr string) (*Client, error) {
	return d.dial(ctx, local, addr, false)
}

// dial connects a client; own makes the client close the dialer with it.
func (d *Dialer) dial(ctx context.Context, local, addr string, own bool) (*Client, error) {
	network, _, err := protoAddr(addr)
	if err != nil {
		return nil, err
	}
	_, address, _ := cutScheme(addr)
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
	cl := &Client{d: d, network: network, addr: address, local: laddr, own: own,
		readyCh: make(chan struct{}), done: make(chan struct{})}
	d.conns.Store(cl, struct{}{})
	if err := cl.connect(ctx); err != nil {
		d.conns.Delete(cl)
		return nil, err
	}
	return cl, nil
}

func cutScheme(addr string) (string, string, bool) {
	for i := 0; i+3 <= len(addr); i++ {
		if addr[i:i+3] == "://" {
			return addr[:i], addr[i+3:], true
		}
	}
	return "tcp", addr, false
}

// Dial connects a single client with its own event loop, closed with the
// client. See [Dialer.Dial]; use a [Dialer] for many connections.
func Dial(ctx context.Context, addr string, r *handler.Router, opts ...ClientOption) (*Client, error) {
	d, err := NewDialer(r, opts...)
	if err != nil {
		return nil, err
	}
	cl, err := d.dial(ctx, "", addr, true)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return cl, nil
}

// Client is one client connection: the original's Client. It implements
// [handler.Conn], so it can send, call and close like a server's
// connection, and it is what callbacks receive as their connection.
//
// All methods are safe for concurrent use by multiple goroutines.
type Client struct {
	d       *Dialer
	network string
	addr    string
	local   net.Addr // source address, or nil
	own     bool     // the client owns its dialer

	mu        sync.Mutex // guards cur, held, heldBytes, draining, closing
	cur       *conn
	held      []heldFrame
	heldBytes int
	draining  bool  // the loop is writing held frames to cur: new ones queue behind them
	closing   error // set once Close is called

	readyOnce sync.Once
	readyCh   chan struct{}
	size      atomic.Int64
	reconns   atomic.Int64
	doneOnce  sync.Once
	done      chan struct{}
	doneErr   error

	valMu sync.Mutex // guards val
	val   any
}

func (cl *Client) current() *conn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.cur
}

// connect dials and enrolls one connection.
func (cl *Client) connect(ctx context.Context) error {
	d := cl.d
	cfg := &d.side.cfg
	nd := net.Dialer{Timeout: cfg.dialTimeout, LocalAddr: cl.local}
	nc, err := nd.DialContext(ctx, cl.network, cl.addr)
	if err != nil {
		return fmt.Errorf("engine: dial %s: %w", cl.addr, err)
	}
	c := &conn{side: &d.side, client: cl, id: d.nextID.Add(1), idx: -1}
	c.scanner = codec.NewScanner(cfg.maxSize)
	c.remote = nc.RemoteAddr()
	c.lastRecv.Store(time.Now().UnixNano())
	if cfg.rateLimit > 0 { // WithRateLimit applies to both sides, as newConn does
		c.extra().limiter = rate.NewLimiter(rate.Limit(cfg.rateLimit), cfg.rateBurst)
	}
	cl.mu.Lock()
	cl.cur = c
	cl.mu.Unlock()
	if _, err := d.cli.EnrollContext(nc, c); err != nil {
		_ = nc.Close()
		return fmt.Errorf("engine: dial %s: %w", cl.addr, err)
	}
	// A listener that accepts and then never serves (a server stopping
	// leaves such connections open) would hold the client, and its
	// reconnection, for good: the -2 frame must come within the dial timeout.
	// EnrollContext returns after OnOpen, so c.loop is set.
	time.AfterFunc(cfg.dialTimeout, func() {
		if !c.ready.Load() {
			_ = c.closeWith(fmt.Errorf("%w: no message size within %v", ErrProtocol, cfg.dialTimeout))
		}
	})
	return nil
}

// discover reads the server's first frame to learn the message size, on the
// loop. It reports whether the size is now known.
func (cl *Client) discover(c *conn) bool {
	buf, _ := c.gc.Peek(-1)
	op, start, end, done, err := c.scanner.Scan(buf)
	if err != nil {
		c.closeNow(fmt.Errorf("%w: first frame: %w", ErrProtocol, err))
		return false
	}
	if !done {
		return false
	}
	var m struct {
		Size *int64 `json:"message_size"`
	}
	cfg := &c.side.cfg
	if op == codec.OpFailure {
		var f handler.Error
		_ = codec.Unmarshal(buf[start:end], &f)
		err := fmt.Errorf("%w: the server refused the connection: %w", ErrProtocol, handler.FromWire(f.Reason, f.Message))
		if f.Reason == ReasonServerFull {
			err = fmt.Errorf("%w: %w", ErrServerFull, err)
		}
		c.closeNow(err)
		return false
	}
	if op != codec.OpMessageSize || codec.Unmarshal(buf[start:end], &m) != nil || m.Size == nil {
		c.closeNow(fmt.Errorf("%w: first frame is not a message size (opcode %d)", ErrProtocol, op))
		return false
	}
	if *m.Size < int64(cfg.minSize) || *m.Size > int64(cfg.maxSize) {
		c.closeNow(fmt.Errorf("%w: %d", ErrSizeOutOfBounds, *m.Size))
		return false
	}
	n := int(*m.Size)
	c.inSize, c.scanner = n, nil
	c.setOutSize(n)
	cl.mu.Lock()
	if closing := cl.closing; closing != nil {
		// Close ran while this connection was being set up (see close).
		cl.mu.Unlock()
		c.closeNow(closing)
		return false
	}
	c.ready.Store(true)
	draining := len(cl.held) > 0
	cl.draining = draining
	cl.mu.Unlock()
	if draining {
		c.extra().drainHeld = true
		cl.drainHeld(c)
	}
	c.dispatch(job{kind: jobConnect, reconnect: cl.reconns.Load() > 0}, nil)
	cl.readyOnce.Do(func() { close(cl.readyCh) })
	return true
}

// drainHeld writes the frames held until c was ready, as many as the
// calls' budget has room for: they are the client's own burst, written
// without the slow-consumer check, so they are paced like calls' requests
// instead of landing in gnet's buffer all at once (a thousand small frames
// held are a thousand full-size frames once written). releaseCalls calls
// it again as room is made. Frames sent meanwhile are held behind them, so
// order is kept. On the loop.
func (cl *Client) drainHeld(c *conn) {
	x := c.extra()
	if !x.drainHeld || x.inDrain || c.closed.Load() {
		// inDrain: a write below flushed and released room; the outer
		// call goes on, in order.
		return
	}
	x.inDrain = true
	defer func() { x.inDrain = false }()
	charge, limit := int64(c.outSize), int64(c.side.cfg.maxOutbound)
	for {
		cl.mu.Lock()
		if cl.cur != c {
			cl.mu.Unlock()
			return
		}
		if len(cl.held) == 0 {
			cl.held, cl.draining = nil, false
			x.drainHeld = false
			cl.mu.Unlock()
			return
		}
		// As many as fit; always one when nothing is charged, so that a
		// budget smaller than a frame still makes progress.
		charged := x.callBytes.Load()
		k := int((limit - charged) / charge)
		if charged == 0 {
			k = max(k, 1)
		}
		if k <= 0 {
			cl.mu.Unlock()
			return
		}
		batch := cl.held[:min(k, len(cl.held))]
		cl.held = cl.held[len(batch):]
		for _, h := range batch {
			cl.heldBytes -= len(h.obj)
		}
		cl.mu.Unlock()
		for _, h := range batch {
			x.callBytes.Add(charge)
			c.writeCall(h.op, h.obj, int(charge))
			if c.closed.Load() {
				return
			}
		}
	}
}

// sendObj sends through the current connection, or holds the frame while
// the size is unknown, the client is reconnecting or frames held before
// are still being written.
func (cl *Client) sendObj(ctx context.Context, mode sendMode, op codec.Opcode, obj []byte) error {
	cl.mu.Lock()
	if cl.closing != nil {
		cl.mu.Unlock()
		return fmt.Errorf("engine: send opcode %d: %w", op, ErrClosed)
	}
	c := cl.cur
	if c != nil && c.ready.Load() && !cl.draining && !c.closed.Load() {
		cl.mu.Unlock()
		return c.enqueueObj(ctx, mode, op, obj)
	}
	if n := len(obj) + opLen(op); n > cl.d.side.cfg.maxSize {
		cl.mu.Unlock()
		return fmt.Errorf("engine: send opcode %d: %w: %d bytes, largest frame is %d",
			op, codec.ErrFrameTooLarge, n, cl.d.side.cfg.maxSize)
	}
	if c != nil && c.closed.Load() && !cl.d.side.cfg.reconnect {
		cl.mu.Unlock()
		return fmt.Errorf("engine: send opcode %d: %w", op, ErrClosed)
	}
	defer cl.mu.Unlock()
	if cl.heldBytes+len(obj) > cl.d.side.cfg.maxHeld {
		return fmt.Errorf("engine: send opcode %d: holding %d bytes until connected: %w", op, cl.heldBytes, ErrOutboundFull)
	}
	cl.held = append(cl.held, heldFrame{op: op, obj: append([]byte(nil), obj...)})
	cl.heldBytes += len(obj)
	return nil
}

// connClosed runs on the loop when the current connection closes.
func (cl *Client) connClosed(c *conn, reason error) {
	cl.mu.Lock()
	closing := cl.closing
	cl.mu.Unlock()
	if closing == nil && cl.d.side.cfg.reconnect {
		d := cl.d
		d.wgMu.Lock()
		if !d.stopped {
			d.wg.Add(1)
			go cl.reconnect()
			d.wgMu.Unlock()
			return
		}
		d.wgMu.Unlock()
	}
	cl.finish(reason)
}

// finish marks the client closed for good.
func (cl *Client) finish(reason error) {
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = reason
	}
	cl.held, cl.heldBytes = nil, 0
	cl.mu.Unlock()
	cl.doneOnce.Do(func() {
		cl.doneErr = reason
		cl.d.conns.Delete(cl)
		if cl.own {
			// Stopping the loops must not run on a loop: do it from a
			// goroutine, and only then report the client done.
			go func() {
				_ = cl.d.Close()
				close(cl.done)
			}()
			return
		}
		close(cl.done)
	})
}

// reconnect dials again with exponential backoff and full jitter until it
// succeeds, the client is closed or the dialer stops.
func (cl *Client) reconnect() {
	defer cl.d.wg.Done()
	cfg := &cl.d.side.cfg
	backoff := cfg.backoffMin
	for attempt := 0; ; attempt++ {
		wait := time.Duration(rand.Int64N(int64(backoff) + 1))
		select {
		case <-cl.d.stop:
			cl.finish(ErrShutdown)
			return
		case <-time.After(wait):
		}
		cl.mu.Lock()
		closing := cl.closing
		cl.mu.Unlock()
		if closing != nil {
			cl.finish(closing)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.dialTimeout)
		// Counted before connect returns: the loop may read the -2 frame
		// and run the connect callbacks (discover) before that.
		cl.reconns.Add(1)
		err := cl.connect(ctx)
		cancel()
		if err == nil {
			return
		}
		cl.reconns.Add(-1)
		cfg.logger.Debug("simplerpc: reconnect failed", "addr", cl.addr, "attempt", attempt, "err", err)
		backoff = min(backoff*2, cfg.backoffMax)
	}
}

// Ready returns a channel closed once the first connection knows its
// message size. It is safe for concurrent use.
func (cl *Client) Ready() <-chan struct{} { return cl.readyCh }

// Done returns a channel closed once the client is closed for good: by
// Close, by losing its connection without [WithReconnect], or by its
// dialer's Close. [Client.Err] then says why.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err returns why the client closed, once [Client.Done] is closed: io.EOF
// if the server closed the connection, [ErrLocalClose] after Close, ...
func (cl *Client) Err() error {
	select {
	case <-cl.done:
		return cl.doneErr
	default:
		return nil
	}
}

// Run blocks until the client closes for good or ctx ends (the original's
// blocking start()); it closes the client when ctx ends. It returns nil
// after Close, ctx's error, or the reason the connection was lost.
func (cl *Client) Run(ctx context.Context) error {
	select {
	case <-cl.done:
	case <-ctx.Done():
		_ = cl.Close()
		<-cl.done
		return ctx.Err()
	}
	if errors.Is(cl.doneErr, ErrLocalClose) {
		return nil
	}
	return cl.doneErr
}

// MessageSize returns the frame size learned from the server, or 0 before
// it is known.
func (cl *Client) MessageSize() int { return int(cl.size.Load()) }

// ID returns the client connection's local id, unique within its dialer.
func (cl *Client) ID() uint64 {
	if c := cl.current(); c != nil {
		return c.id
	}
	return 0
}

// RemoteAddr returns the server's address.
func (cl *Client) RemoteAddr() string { return cl.addr }

// Value returns the application value.
func (cl *Client) Value() any {
	cl.valMu.Lock()
	defer cl.valMu.Unlock()
	return cl.val
}

// SetValue stores an application value with the client.
func (cl *Client) SetValue(v any) {
	cl.valMu.Lock()
	cl.val = v
	cl.valMu.Unlock()
}

// Send encodes v and sends it on opcode op: the original's rpc. It returns
// an error for a value that is not a JSON object, one too large for the
// message size bounds, or a closed client.
func (cl *Client) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d: %w", op, err)
	}
	return cl.sendObj(context.Background(), modeSend, op, obj)
}

// SendRaw sends the encoded JSON object obj on opcode op; obj is copied.
func (cl *Client) SendRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d: %w", op, err)
	}
	return cl.sendObj(context.Background(), modeSend, op, obj)
}

// Call sends a request to the server and waits for its reply, decoding it
// into resp (which may be nil); a nil req sends {}. It fails with ctx's
// error when ctx ends, with [ErrClosed] when the connection closes first,
// and with the remote failure (see [handler.ReasonOf]) when the server's
// handler fails. A burst of calls that fills the outbound queue
// ([WithMaxOutbound]) waits for room rather than failing. It is safe for
// concurrent use.
func (cl *Client) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	c := cl.current()
	if c == nil {
		return fmt.Errorf("engine: call opcode %d: %w", op, ErrClosed)
	}
	return c.Call(ctx, op, req, resp)
}

// CallAsync sends a request to the server without waiting for the reply:
// done runs once with the outcome (nil once the reply is decoded into resp,
// or the error Call would have returned), where the client's callbacks run,
// so it must not block unless the client has a worker pool. If CallAsync
// returns an error, done never runs. It is safe for concurrent use, from
// inline callbacks too.
func (cl *Client) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	c := cl.current()
	if c == nil {
		return fmt.Errorf("engine: call opcode %d: %w", op, ErrClosed)
	}
	return c.CallAsync(ctx, op, req, resp, done)
}

// Close closes the client after the frames already sent, and stops
// reconnecting. It returns at once; [Client.Done] is closed when it is
// done and the disconnect callback has run.
func (cl *Client) Close() error { return cl.close(ErrLocalClose) }

func (cl *Client) close(reason error) error {
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = reason
	}
	c := cl.cur
	cl.mu.Unlock()
	if c == nil || c.closed.Load() {
		cl.finish(reason)
		return nil
	}
	if !c.ready.Load() {
		// Still being set up, perhaps before OnOpen has set c.loop: discover
		// sees closing and closes it, or the peer or the dial timeout ends it.
		return nil
	}
	if err := c.closeWith(reason); err != nil {
		cl.finish(reason)
	}
	return nil
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
	c.loop = e.d.loopFor(gc.EventLoop())
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

// SetMessageSize changes the frame size of the connection (docs/PROTOCOL.md
// §3): the client sends -2 at the current size, switches its outbound size
// right after, and the server answers with its own -2. n must lie within
// the size bounds. It fails with [ErrClosed] when not connected.
func (cl *Client) SetMessageSize(n int) error {
	c := cl.current()
	if c == nil || !c.ready.Load() {
		return fmt.Errorf("engine: set message size: %w", ErrClosed)
	}
	return c.setMessageSize(n)
}
