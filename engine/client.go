// This file holds the Client: the supervisor of a client's connections.
// It dials them, learns each one's message size, holds what it is asked
// to send until a connection can send it, and reconnects.

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// Client is the original's Client: it dials a server, and keeps a
// connection to it. It is not a connection itself: its connections are,
// one at a time, of the same type as a server's (see [Client.Conn]), and
// its callbacks receive the one they run for, as a server's do, a new one
// on each reconnection, with its own id, values and context. The Client
// sends, calls and closes across them: what it is asked to send while it
// has no connection ready it holds for the next one.
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

	mu        sync.Mutex // guards cur, sized, enrolled, held, heldBytes, closing, redialing, prev, sizeTimer
	cur       *conn
	sized     bool // cur knows the message size
	enrolled  bool // cur is on its event loop: a close can be queued to it
	held      []heldFrame
	heldBytes int
	closing   error       // set once Close is called
	redialing bool        // a reconnection is under way
	prev      *conn       // the connection a go-away left, until the next one opens
	sizeTimer *time.Timer // closes cur if its size does not come within the dial timeout

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

	ctx    context.Context // cancelled when the client closes for good
	cancel context.CancelCauseFunc
}

func newClient(d *Dialer, network, addr string, local net.Addr, own bool, creds any) *Client {
	cl := &Client{d: d, network: network, addr: addr, local: local, own: own, layer: d.side.cfg.newLayer,
		creds: creds, readyCh: make(chan struct{}), done: make(chan struct{})}
	if creds != nil {
		cl.authCh = make(chan struct{})
	}
	cl.ctx, cl.cancel = context.WithCancelCause(context.Background())
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
			what := "no message size" // the server's -2 (docs/PROTOCOL.md §3)
			if ready == nil {
				what = "no answer to the credentials" // the server's -9
			}
			err = fmt.Errorf("%w: %s within %v", ErrProtocol, what, cl.d.side.cfg.dialTimeout)
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
	c := newConn(&d.side, cl, d.nextID.Add(1))
	c.setRemote(nc.RemoteAddr())
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
	// A listener that accepts and then never serves (a server stopping
	// leaves such connections open) would hold the client, and its
	// reconnection, for good: the -2 frame must come within the dial
	// timeout. open stops the timer, so that a ready connection holds none.
	if cl.sizeTimer != nil {
		cl.sizeTimer.Stop()
	}
	cl.sizeTimer = time.AfterFunc(cfg.dialTimeout, func() {
		if !cl.isReady(c) {
			c.closeWith(fmt.Errorf("%w: no message size within %v", ErrProtocol, cfg.dialTimeout))
		}
	})
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
	c.inSize = int32(n)
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
		c.x.Load().creds = credsSent // a client's connection has its connExtra (newConn)
	}
	if fn := cfg.onReconnect; fn != nil && cl.reconns.Load() > 0 {
		// The session is restored first, on a goroutine of its own (it
		// may call): what it sends on c goes out at once (send), what the
		// Client is asked to send meanwhile is held behind it.
		if cl.d.spawn(func() {
			c.safely("reconnect callback", func() { fn(c) })
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
	if cl.sizeTimer != nil {
		cl.sizeTimer.Stop()
		cl.sizeTimer = nil
	}
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

// send queues a frame that was sent on c itself (its Send, SendRaw, Call
// or CallAsync, from a callback or from [Client.Conn]): it goes out at once
// once c knows its size, ahead of what the client holds (the reconnect
// callback's session comes first). A connection the client has let go is
// closed to sends, unless a go-away left it still served.
func (cl *Client) send(c *conn, mode sendMode, op codec.Opcode, obj []byte, id uint64) error {
	return cl.sendOn(c, false, mode, op, obj, id)
}

// supervised queues a frame the Client itself was asked to send (Send,
// SendRaw; Call and CallAsync on c, its current connection): it follows
// what it holds, and waits with them while no connection is open. A call's
// request (id not 0) is only ever sent on the connection whose call it is.
func (cl *Client) supervised(c *conn, mode sendMode, op codec.Opcode, obj []byte, id uint64) error {
	return cl.sendOn(c, true, mode, op, obj, id)
}

// sendOn is send, or supervised for the client's own sends; c is nil for
// the client's plain sends (the current connection's).
func (cl *Client) sendOn(c *conn, own bool, mode sendMode, op codec.Opcode, obj []byte, id uint64) error {
	cfg := &cl.d.side.cfg
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closing != nil {
		return ErrClosed
	}
	switch {
	case c == nil:
		c = cl.cur
	case c != cl.cur:
		if c == cl.prev && !c.closed.Load() {
			// The connection a go-away replaces, still served until the
			// new one is open: it carries the call, and is let go once the
			// call is answered (retire).
			return c.enqueue(mode, op, obj, id)
		}
		if id == 0 {
			return ErrClosed // let go: its client is on a newer connection
		}
		return errRetired // not sent: the call is made again on the current connection
	}
	if c == nil {
		return ErrClosed
	}
	if !c.closed.Load() && (cl.sized || !own && c.size.Load() != 0) {
		return c.enqueue(mode, op, obj, id)
	}
	if n := len(obj) + opLen(op); n > cfg.maxSize {
		return fmt.Errorf("%w: %d bytes, largest frame is %d", codec.ErrFrameTooLarge, n, cfg.maxSize)
	}
	if c.closed.Load() && (!own || !cfg.reconnect) {
		return ErrClosed
	}
	if cl.heldBytes+len(obj) > cfg.maxHeld {
		return fmt.Errorf("holding %d bytes until connected: %w", cl.heldBytes, ErrOutboundFull)
	}
	h := heldFrame{op: op, obj: clone(obj), call: id}
	if id != 0 || !own {
		h.conn = c // goes out on c only
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
	if x := c.x.Load(); x != nil && x.creds == credsRefused && cl.closing == nil {
		cl.closing = fmt.Errorf("%w: %w", ErrUnauthorized, x.refusal) // the server refused the credentials, then closed
	}
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

func (cl *Client) peer(c *conn) string { return "server " + c.RemoteAddr() }

// authed takes the server's acknowledgement of the credentials, -9
// {"identity": ...}: the identity it names is the connection's
// ([IdentityOf]), and a Dial waiting for it returns. On the loop.
func (cl *Client) authed(c *conn, obj []byte) {
	if cl.authCh == nil {
		return // no credentials were sent: not an acknowledgement
	}
	var m struct {
		Identity string `json:"identity"`
	}
	_ = codec.Unmarshal(obj, &m)
	c.setIdentity(m.Identity)
	cl.authOnce.Do(func() { close(cl.authCh) })
}

// goAway moves a reconnecting client to a new connection before it lets
// the old one go (make before break): a new connection is dialed at once,
// while the old one, which the server still serves, carries what is sent
// until the new one is open; then it closes once the calls it carries are
// answered (or the server closes it). On the loop.
func (cl *Client) goAway(c *conn) {
	x := c.extra()
	if !cl.d.side.cfg.reconnect || x.leaving {
		return
	}
	x.leaving = true
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
