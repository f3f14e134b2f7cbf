// This file holds the Client: one client connection that learns the
// server's message size, holds what it sends until it can send it, and
// reconnects.

package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Client is one client connection: the original's Client. It implements
// [handler.Conn], so it can send, call and close like a server's
// connection. Its callbacks receive it as their connection, the same
// across reconnections.
//
// It is safe for concurrent use by multiple goroutines.
type Client struct {
	d       *Dialer
	network string
	addr    string
	local   net.Addr          // source address, or nil
	own     bool              // the client owns its dialer
	creds   any               // sent first on every connection, or nil
	layer   func(*conn) layer // the transport layer of its connections: the dialer's, or WebSocket's (wsclient.go)
	dialed  chan error        // ws://: the outcome of the first upgrade, for Dial; else nil

	mu        sync.Mutex // guards cur, sized, enrolled, held, heldBytes, closing, redialing, prev
	cur       *conn
	sized     bool // cur knows the message size
	enrolled  bool // cur is on its event loop: a close can be queued to it
	held      []heldFrame
	heldBytes int
	closing   error // set once Close is called
	redialing bool  // a reconnection is under way
	prev      *conn // the connection a go-away left, until the next one opens

	scan *codec.Scanner // finds cur's first frame; loop-only once cur is enrolled

	readyOnce sync.Once
	readyCh   chan struct{}
	authOnce  sync.Once
	authCh    chan struct{} // closed at the first acknowledgement of the credentials; nil without credentials
	lastErr   error         // guarded by mu: why the last connection closed
	reconns   atomic.Int64
	doneOnce  sync.Once
	done      chan struct{}
	doneErr   error

	valMu    sync.Mutex // guards val, vals, identity
	val      any
	vals     map[any]any // handler.Key values
	identity string      // what the server's last -9 acknowledgement named
	ctx      context.Context
	cancel   context.CancelCauseFunc
}

func newClient(d *Dialer, network, addr string, local net.Addr, own bool, creds any) *Client {
	cl := &Client{d: d, network: network, addr: addr, local: local, own: own, layer: d.side.cfg.newLayer,
		creds: creds, readyCh: make(chan struct{}), done: make(chan struct{})}
	if creds != nil {
		cl.authCh = make(chan struct{})
	}
	cl.ctx, cl.cancel = context.WithCancelCause(handler.WithConn(context.Background(), cl))
	return cl
}

// awaitReady waits until the client's first connection is ready: the
// message size known and, with credentials, the server's acknowledgement
// of them. It returns why not when the client closed first (a refusal, an
// unreadable first frame: the server is no simplerpc server), or, after
// the dial timeout or when ctx ends, why the last connection closed.
func (cl *Client) awaitReady(ctx context.Context) error {
	t := time.NewTimer(cl.d.side.cfg.dialTimeout)
	defer t.Stop()
	ready, authed := cl.readyCh, cl.authCh
	isReady := func() bool {
		// Ready first: a client that became ready and closed at once was
		// ready, and its Done tells the rest.
		for _, ch := range []chan struct{}{ready, authed} {
			if ch == nil {
				continue
			}
			select {
			case <-ch:
			default:
				return false
			}
		}
		return true
	}
	for !isReady() {
		var err error
		select {
		case <-ready:
			ready = nil // nil: done with
			continue
		case <-authed:
			authed = nil
			continue
		case <-cl.done:
			if isReady() {
				return nil
			}
			return cl.doneErr
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
			err = fmt.Errorf("%w: not ready within %v", ErrProtocol, cl.d.side.cfg.dialTimeout)
		}
		cl.mu.Lock()
		last := cl.lastErr
		cl.mu.Unlock()
		if last != nil {
			return fmt.Errorf("%w (last connection: %w)", err, last)
		}
		return err
	}
	return nil
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
	c := newConn(&d.side, cl, nil, d.nextID.Add(1))
	c.remote = nc.RemoteAddr()
	if cl.layer != nil {
		c.extra().newLayer = cl.layer
	}
	cl.mu.Lock()
	if old := cl.cur; old != nil && !old.closed.Load() {
		cl.prev = old // a go-away's: it carries its calls until this one opens
	}
	cl.cur, cl.sized, cl.enrolled = c, false, false
	// From here on a close of c is the next connection to replace: the
	// dial that made it is over, whatever becomes of c.
	cl.redialing = false
	cl.scan = codec.NewScanner(min(cfg.maxSize, firstFrameLimit))
	cl.mu.Unlock()
	if _, err := d.cli.EnrollContext(nc, c); err != nil {
		_ = nc.Close()
		return fmt.Errorf("engine: dial %s: %w", cl.addr, err)
	}
	cl.mu.Lock()
	cl.enrolled = true
	closing := cl.closing
	cl.mu.Unlock()
	if closing != nil {
		c.closeWith(closing) // Close ran while the connection was being set up
	}
	// A listener that accepts and then never serves (a server stopping
	// leaves such connections open) would hold the client, and its
	// reconnection, for good: the -2 frame must come within the dial timeout.
	time.AfterFunc(cfg.dialTimeout, func() {
		if !cl.isReady(c) {
			c.closeWith(fmt.Errorf("%w: no message size within %v", ErrProtocol, cfg.dialTimeout))
		}
	})
	return nil
}

// isReady reports whether c is the client's connection and knows its size.
func (cl *Client) isReady(c *conn) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.cur == c && cl.sized
}

// ---- The client as its connections' owner ----

// firstFrameLimit bounds the bytes a client reads to find the object of a
// server's first frame, a -2 (or a -1 refusal) of a few dozen bytes: a
// server that sends an object that never ends is closed once it has sent
// this much, instead of making the client hold up to its largest frame
// size. The original's default frame size.
const firstFrameLimit = 1024

// ready reads the server's first frame to learn the message size, then
// hands the frames held so far to the connection and runs the connect
// callback. On the loop.
func (cl *Client) ready(c *conn) bool {
	if cl.scan == nil {
		return false // refused: the close is on its way
	}
	r := c.wire()
	buf, _ := r.Peek(min(r.InboundBuffered(), firstFrameLimit))
	op, start, end, done, err := cl.scan.Scan(buf)
	if err != nil {
		c.closeNow(fmt.Errorf("%w: first frame: %w", ErrProtocol, err))
		return false
	}
	if !done {
		return false
	}
	cfg := &c.side.cfg
	if op == codec.OpFailure {
		var f handler.Error
		_ = codec.Unmarshal(buf[start:end], &f)
		err := fmt.Errorf("%w: the server refused the connection: %w", ErrProtocol, remoteFailure(f.Reason, f.Message))
		if f.Reason == ReasonServerFull {
			err = fmt.Errorf("%w: %w", ErrServerFull, err)
		}
		c.closeNow(err)
		return false
	}
	var m struct {
		Size *int64 `json:"message_size"`
	}
	if op != codec.OpMessageSize || codec.Unmarshal(buf[start:end], &m) != nil || m.Size == nil {
		c.closeNow(fmt.Errorf("%w: first frame is not a message size (opcode %d)", ErrProtocol, op))
		return false
	}
	n := *m.Size
	if n < int64(cfg.minSize) || n > int64(cfg.maxSize) {
		// Refused with a failure frame the server can read, at its size,
		// where the protocol allows that size at all (docs/PROTOCOL.md §3).
		if n >= codec.MinMessageSize && n <= codec.MaxMessageSize {
			// Once the whole frame is read: closing on unread bytes would
			// reset the connection, and the failure with it.
			if c.wire().InboundBuffered() < int(n) {
				return false
			}
			_, _ = c.wire().Discard(int(n))
			c.setOutSize(int(n))
			c.refuseSize(strconv.FormatInt(n, 10))
			cl.scan = nil
			return false
		}
		c.closeNow(fmt.Errorf("%w: %d", ErrSizeOutOfBounds, n))
		return false
	}
	c.inSize = int(n)
	c.setOutSize(int(n))
	cl.scan = nil
	if creds := cl.creds; creds != nil {
		// First on every connection, ahead of what the client holds.
		obj, err := codec.Marshal(creds)
		if err != nil {
			c.closeNow(fmt.Errorf("engine: credentials: %w", err))
			return false
		}
		c.writeObj(codec.OpAuth, obj)
	}
	if fn := cfg.onReconnect; fn != nil && cl.reconns.Load() > 0 {
		// The session is restored first, on a goroutine of its own (it
		// may call): what the Client is asked to send meanwhile is held
		// behind what the hook sends.
		if cl.d.spawn(func() {
			c.safely("reconnect callback", func() { fn(&sessionConn{Client: cl, c: c}) })
			if c.loop.enqueue(task{kind: taskFunc, fn: func() { cl.open(c) }}, nil) != nil {
				c.closeWith(ErrShutdown)
			}
		}) {
			return true
		}
	}
	cl.open(c)
	return true
}

// open makes c the client's open connection: the frames held so far go
// out, then what is sent from now on, and the connect callback runs. On
// the loop.
func (cl *Client) open(c *conn) {
	cl.mu.Lock()
	if closing := cl.closing; closing != nil || cl.cur != c || c.closed.Load() {
		cl.mu.Unlock()
		if closing != nil {
			c.closeNow(closing)
		}
		return
	}
	cl.sized = true
	prev := cl.prev
	cl.prev = nil
	held := cl.held[:0]
	for _, h := range cl.held {
		if h.conn == nil || h.conn == c { // a call of an older connection has failed
			held = append(held, h)
		}
	}
	cl.held, cl.heldBytes = nil, 0
	cl.mu.Unlock()
	if len(held) > 0 {
		c.hold(held)
	}
	cl.retire(prev)
	c.reported = true
	c.dispatch(job{kind: jobConnect}, nil)
	cl.readyOnce.Do(func() { close(cl.readyCh) })
}

// sessionConn is the connection the reconnect callback gets: the client,
// but what it sends goes out at once, ahead of the frames the client held
// while it was disconnected.
type sessionConn struct {
	*Client
	c *conn
}

// Send sends v ahead of the held frames.
func (s *sessionConn) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = s.c.enqueue(modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, s.peer(s.c), err)
	}
	return nil
}

// SendRaw sends obj ahead of the held frames.
func (s *sessionConn) SendRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err == nil {
		err = s.c.enqueue(modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, s.peer(s.c), err)
	}
	return nil
}

// Call calls ahead of the held frames.
func (s *sessionConn) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	if err := s.c.call(ctx, op, req, resp, direct); err != nil {
		return s.c.callError(op, err)
	}
	return nil
}

// CallAsync calls ahead of the held frames, without waiting.
func (s *sessionConn) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	if err := s.c.callAsync(ctx, op, req, resp, done, direct); err != nil {
		return s.c.callError(op, err)
	}
	return nil
}

// send sends through the current connection, or holds the frame while the
// size is unknown or the client is reconnecting. A call's request (id not
// 0) is only ever sent on the connection whose call it is.
func (cl *Client) send(c *conn, mode sendMode, op codec.Opcode, obj []byte, id uint64) error {
	cfg := &cl.d.side.cfg
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closing != nil {
		return ErrClosed
	}
	if id == 0 {
		c = cl.cur
	} else if c != cl.cur {
		if c == cl.prev && !c.closed.Load() {
			// The connection a go-away replaces, still served until the
			// new one is open: it carries the call, and is let go once the
			// call is answered (retire).
			return c.enqueue(mode, op, obj, id)
		}
		return errRetired // not sent: the call is made again on the current connection
	}
	if c == nil {
		return ErrClosed
	}
	if cl.sized && !c.closed.Load() {
		return c.enqueue(mode, op, obj, id)
	}
	if n := len(obj) + opLen(op); n > cfg.maxSize {
		return fmt.Errorf("%w: %d bytes, largest frame is %d", codec.ErrFrameTooLarge, n, cfg.maxSize)
	}
	if c.closed.Load() && !cfg.reconnect {
		return ErrClosed
	}
	if cl.heldBytes+len(obj) > cfg.maxHeld {
		return fmt.Errorf("holding %d bytes until connected: %w", cl.heldBytes, ErrOutboundFull)
	}
	h := heldFrame{op: op, obj: clone(obj), call: id}
	if id != 0 {
		h.conn = c
	}
	cl.held = append(cl.held, h)
	cl.heldBytes += len(obj)
	return nil
}

// closed runs on the loop when the current connection closes: the sends
// that were still waiting are held again for the next connection, if the
// client reconnects.
func (cl *Client) closed(c *conn, reason error) {
	cl.upgradeDone(reason) // a ws:// Dial waits for its first connection
	unsent := c.unsent()
	cl.mu.Lock()
	if cl.cur != c {
		// An older connection, let go after a go-away: the client lives on
		// in its successor, which gets the sends it did not write.
		cur, sized := cl.cur, cl.sized
		if !sized {
			cl.held = append(unsent, cl.held...)
			for _, h := range unsent {
				cl.heldBytes += len(h.obj)
			}
		}
		cl.mu.Unlock()
		if sized && len(unsent) > 0 {
			_ = cur.loop.enqueue(task{kind: taskFunc, fn: func() { cur.hold(unsent) }}, nil)
		}
		return
	}
	cl.sized = false
	cl.lastErr = reason
	closing := cl.closing
	if closing == nil && cl.d.side.cfg.reconnect && len(unsent) > 0 {
		for _, h := range unsent {
			cl.heldBytes += len(h.obj)
		}
		cl.held = append(unsent, cl.held...)
	}
	cl.mu.Unlock()
	if closing == nil && cl.d.side.cfg.reconnect {
		if !cl.redial() || cl.d.spawn(cl.reconnect) {
			return // a dial is under way already, or now
		}
	}
	if errors.Is(closing, ErrUnauthorized) {
		reason = closing // the server refused the credentials, then closed
	}
	cl.finish(reason)
}

func (cl *Client) handle(*conn) handler.Conn { return cl }

// refused notes a server's refusal of the client's credentials: the
// client ends with ErrUnauthorized when the server closes, and does not
// reconnect with credentials it was told are wrong. On the loop.
func (cl *Client) refused(_ *conn, obj []byte) {
	if cl.creds == nil {
		return
	}
	reason, message := failureReason(obj)
	if reason != ReasonUnauthorized {
		return
	}
	err := ErrUnauthorized
	if message != "" {
		err = fmt.Errorf("%w: %s", ErrUnauthorized, message) // the server's words
	}
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = err
	}
	cl.mu.Unlock()
}

func (cl *Client) peer(c *conn) string { return "server " + c.RemoteAddr() }

// authed takes the server's acknowledgement of the credentials, -9
// {"identity": ...}: the identity it names is the client's
// ([IdentityOf]), and a Dial waiting for it returns. On the loop.
func (cl *Client) authed(_ *conn, obj []byte) {
	if cl.authCh == nil {
		return // no credentials were sent: not an acknowledgement
	}
	var m struct {
		Identity string `json:"identity"`
	}
	_ = codec.Unmarshal(obj, &m)
	cl.valMu.Lock()
	cl.identity = m.Identity
	cl.valMu.Unlock()
	cl.authOnce.Do(func() { close(cl.authCh) })
}

// goAway moves a reconnecting client to a new connection before it lets
// the old one go (make before break): a new connection is dialed at once,
// while the old one, which the server still serves, carries what is sent
// until the new one is open; then it closes once the calls it carries are
// answered (or the server closes it). On the loop.
func (cl *Client) goAway(c *conn) {
	if !cl.d.side.cfg.reconnect || c.leaving {
		return
	}
	c.leaving = true
	if cl.redial() {
		cl.d.spawn(func() {
			cl.reconns.Add(1)
			ctx, cancel := context.WithTimeout(context.Background(), cl.d.side.cfg.dialTimeout)
			err := cl.connect(ctx)
			cancel()
			if err != nil {
				cl.reconns.Add(-1)
				cl.reconnect() // as after a drop: backoff until it works
			}
		})
	}
}

// redial reports whether the caller is to start dialing again: false when
// the client is closing or a dial is already under way.
func (cl *Client) redial() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closing != nil || cl.redialing {
		return false
	}
	cl.redialing = true
	return true
}

// retire lets go of the connection before c, after a go-away, once c is
// open: once it carries no call (at once, or when its last call is
// answered: complete), the client sends -8 back on it, and the server
// writes what it still has for this client there and closes it; the client
// reads it all until then (docs/PROTOCOL.md §6.1), so no frame the server
// sent on it is lost. On the loop of c.
func (cl *Client) retire(prev *conn) {
	if prev == nil {
		return
	}
	if prev.extra().calls.retire() {
		prev.leave()
	}
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
		cl.cancel(reason)
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
	cfg := &cl.d.side.cfg
	backoff := cfg.backoffMin
	for attempt := 0; ; attempt++ {
		wait := time.NewTimer(time.Duration(rand.Int64N(int64(backoff) + 1)))
		select {
		case <-cl.d.stop:
			wait.Stop()
			cl.finish(ErrShutdown)
			return
		case <-wait.C:
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
		// and run the connect callbacks (ready) before that.
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

// MessageSize returns the frame size of the current connection, learned
// from the server, or 0 before it is known.
func (cl *Client) MessageSize() int {
	if c := cl.current(); c != nil {
		return int(c.size.Load())
	}
	return 0
}

// ID returns the client connection's local id, unique within its dialer.
// The server numbers the same connection with a net id of its own.
func (cl *Client) ID() uint64 {
	if c := cl.current(); c != nil {
		return c.id
	}
	return 0
}

// RemoteAddr returns the address of the server the client is connected to,
// as resolved when the connection opened.
func (cl *Client) RemoteAddr() string {
	if c := cl.current(); c != nil {
		return c.RemoteAddr()
	}
	return cl.addr
}

// Value returns the application value, kept across reconnections.
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

// Load returns the value stored under key (handler.Store), kept across
// reconnections.
func (cl *Client) Load(key any) (any, bool) {
	cl.valMu.Lock()
	defer cl.valMu.Unlock()
	v, ok := cl.vals[key]
	return v, ok
}

// Store stores value under key, or removes it for nil (handler.Store).
func (cl *Client) Store(key, value any) {
	cl.valMu.Lock()
	defer cl.valMu.Unlock()
	cl.vals = storeValue(cl.vals, key, value)
}

// Context returns the client's context: cancelled, with the reason as its
// cause, once the client is closed for good (not when it reconnects).
func (cl *Client) Context() context.Context { return cl.ctx }

// Send encodes v and sends it on opcode op: the original's rpc. It returns
// an error for a value that is not a JSON object, one too large for the
// message size bounds, or a closed client.
func (cl *Client) Send(op codec.Opcode, v any) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = cl.send(nil, modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to server %s: %w", op, cl.addr, err)
	}
	return nil
}

// SendRaw sends the encoded JSON object obj on opcode op; obj is validated
// and copied.
func (cl *Client) SendRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err == nil {
		err = cl.send(nil, modeSend, op, obj, 0)
	}
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to server %s: %w", op, cl.addr, err)
	}
	return nil
}

// Call sends a request to the server and waits for its reply, decoding it
// into resp (which may be nil); a nil req sends {}. It fails with ctx's
// error when ctx ends, with [ErrClosed] when the connection closes first,
// and with the remote failure (see [handler.ReasonOf]) when the server's
// handler fails. A burst of calls that fills the outbound budget
// ([WithMaxOutbound]) waits for room rather than failing. It is safe for
// concurrent use, but not from the client's own callbacks on the event
// loop: use CallAsync there.
func (cl *Client) Call(ctx context.Context, op codec.Opcode, req, resp any) error {
	for attempt := 0; ; attempt++ {
		c := cl.current()
		if c == nil {
			return fmt.Errorf("engine: call opcode %d: %w", op, ErrClosed)
		}
		// A connection retired after a go-away refuses new calls before it
		// sends anything: the current connection, newer, takes the call.
		if err := c.Call(ctx, op, req, resp); !errors.Is(err, errRetired) || attempt == maxRetired {
			return err
		}
	}
}

// maxRetired bounds how many retired connections one call may meet: one
// per go-away that happened while it was being made.
const maxRetired = 8

// CallAsync sends a request to the server without waiting for the reply:
// done runs once with the outcome (nil once the reply is decoded into resp,
// or the error Call would have returned), where the client's callbacks run,
// so it must not block unless the client has a worker pool. If CallAsync
// returns an error, done never runs. It is safe for concurrent use, from
// inline callbacks too.
func (cl *Client) CallAsync(ctx context.Context, op codec.Opcode, req, resp any, done func(error)) error {
	for attempt := 0; ; attempt++ {
		c := cl.current()
		if c == nil {
			return fmt.Errorf("engine: call opcode %d: %w", op, ErrClosed)
		}
		if err := c.CallAsync(ctx, op, req, resp, done); !errors.Is(err, errRetired) || attempt == maxRetired {
			return err
		}
	}
}

// Close closes the client after the frames already sent, and stops
// reconnecting. It returns at once; [Client.Done] is closed when it is
// done and the disconnect callback, if the connect callback ran, has run.
func (cl *Client) Close() error { return cl.close(ErrLocalClose) }

func (cl *Client) close(reason error) error {
	cl.mu.Lock()
	if cl.closing == nil {
		cl.closing = reason
	}
	c, enrolled := cl.cur, cl.enrolled
	cl.mu.Unlock()
	switch {
	case c == nil || c.closed.Load():
		cl.finish(reason)
	case enrolled:
		c.closeWith(reason)
	}
	// Otherwise connect is enrolling it: it sees closing and closes it.
	return nil
}

// SetMessageSize changes the frame size of the connection (docs/PROTOCOL.md
// §3): the client sends -2 at the current size, switches its outbound size
// right after, and the server answers with its own -2. n must lie within
// the protocol's limits and the outbound cap, and the server must allow it:
// a server refuses, and closes, a size past its bounds (its own message
// size by default, see [WithSizeBounds]). It fails with [ErrClosed] when
// not connected.
func (cl *Client) SetMessageSize(n int) error {
	c := cl.current()
	err := ErrClosed
	if c != nil && cl.isReady(c) {
		err = c.setMessageSize(n)
	}
	if err != nil {
		return fmt.Errorf("engine: set message size: %w", err)
	}
	return nil
}
