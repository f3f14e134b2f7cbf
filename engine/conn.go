// This file holds the connection type that servers and clients share: its
// state, grouped by direction, what identifies it, and the hook through
// which its owner (a server or a client) takes part in its life.

package engine

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/time/rate"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// owner is what a connection's server or client does beyond the shared
// code: the server registers it and announces the size, a client learns
// the size, holds frames while it cannot send and reconnects.
type owner interface {
	// ready makes the connection ready for frames once its transport's
	// handshake is over, and reports whether it is: the server's at once,
	// a client's once the server's first frame has told the size. On the
	// loop, called again on each read until it reports true.
	ready(c *conn) bool
	// closed runs on the loop when the connection closes, before its
	// disconnect callback.
	closed(c *conn, reason error)
	// send queues a frame for the connection, from any goroutine; id is
	// the call of a request, else 0. The connection's own Send, SendRaw,
	// Call and CallAsync come through here.
	send(c *conn, mode sendMode, op codec.Opcode, obj []byte, id uint64) error
	// peer names the other end in errors: "conn 7", "server 10.0.0.1:30000".
	peer(c *conn) string
	// goAway runs on the loop when the peer says it is going away (-8).
	goAway(c *conn)
	// refused runs on the loop for each failure frame (-1), with its
	// object, borrowed.
	refused(c *conn, obj []byte)
	// authed runs on the loop for each -9 frame of an authenticated
	// connection: a server's acknowledgement of a client's credentials.
	authed(c *conn, obj []byte)
}

// conn is one connection, on the server or the client side. Fields marked
// loop-only are touched only by the goroutine of the connection's loop.
// An idle server connection costs its conn, so what only some connections
// use lives in connExtra: the owner of a client's connection (a server's
// is its side's), a layer, a peer address other than TCP's, and the
// notes on malformed frames, held reads and a client's credentials
// (TestConnSize).
type conn struct {
	// Identity, immutable once set.
	side  *side
	loop  *loop
	gc    gnet.Conn // thread-safe methods only, off the loop
	id    uint64
	raddr *net.TCPAddr // the peer's address over TCP, formatted on demand; any other in connExtra (remoteAddr)

	// What most connections never use, allocated on first use: an idle
	// connection costs a pointer for it.
	x atomic.Pointer[connExtra]

	// Shared with other goroutines.
	queued   atomic.Int64 // bytes of sends queued to the loop, not yet written
	lastRecv atomic.Int64 // unix nanoseconds of the last inbound bytes (kept only for the idle sweep and the heartbeat)

	// Loop-only, unless marked. The fields are ordered by size so that a
	// connection fits a small allocation class (TestConnSize).
	out     *outBuf      // write: frames built in this loop round, not yet flushed; a loop's buffer, lent while there are (nil when none)
	inSize  int32        // read: the inbound frame size (at most codec.MaxMessageSize)
	outSize int32        // write: the outbound frame size (at most codec.MaxMessageSize)
	size    atomic.Int32 // outSize, readable off the loop
	idx     int32        // in loop.conns

	// The sweep's notes (sweep.go): loop ticks, 0 for none.
	partialAt uint32 // the tick a partial frame began waiting to complete
	written   uint32 // bytes handed to the wire, mod 2^32 (since the last look while no connExtra)

	closed   atomic.Bool // shared with other goroutines
	started  bool        // read: owner.ready returned true, frames are read
	auth     uint8       // authDone, authWaiting or authPending (auth.go)
	reported bool        // the connect callback was dispatched, so the disconnect one will be
	paused   bool        // read: frames wait until the output drains (read.go)
}

// connExtra is the part of a connection that is allocated on first use:
// the application value, calls, groups, the worker-pool queue, the rate
// limiter, why the engine closed it, the sweep's notes on an output that
// waited, and what conn leaves to the connections that need it (a
// client's owner, a layer, a peer address other than TCP's, the malformed
// score, read holds, a client's notes).
type connExtra struct {
	valMu  sync.Mutex // guards val, vals, ctx, cancel
	val    any
	vals   map[any]any // handler.Key values
	ctx    context.Context
	cancel context.CancelCauseFunc

	calls  pendingTable
	credit credit // outbound credit: the frames that wait for it (credit.go)

	groups []string // guarded by the server's groupsMu

	jobMu   sync.Mutex // guards jobs, frames, running (worker-pool mode)
	jobs    []job
	frames  int // of jobs, the peer's frames and calls: what WithWorkerPool's queue bounds
	running bool

	limiter     *rate.Limiter     // set before the connection is shared
	strikes     int               // loop-only: rate-limited frames in a row
	newLayer    func(*conn) layer // the connection's layer: from its listener (set by the acceptor), its client's (set by connect); nil for plain TCP
	leaveSent   atomic.Bool       // the client sent -8 back on it
	closeReason error             // loop-only
	nextOut     int               // loop-only: the outbound size queued announcements will set, 0 if none
	identity    string            // guarded by valMu: the authenticator's
	authTimer   *time.Timer       // the authentication deadline
	hand        *handState        // loop-only: a handover under way, or the state it is adopted with (handover.go)
	refusal     error             // loop-only, a client's: the failure that answered its credentials (client.go)
	heldIn      int               // loop-only: the unread input counted in the loop's heldIn while paused (memlimit.go)
	taken       uint32            // loop-only, the sweep's: written less what gnet held, at the last look
	stallAt     uint32            // loop-only, the sweep's: the tick the output stopped making progress, 0 for none

	owner   owner    // a client's connection's: its Client (a server's is its side's, conn.owner)
	tl      *layered // set on the loop as the connection opens: the layer, or nil for plain TCP (conn.layered)
	remote  net.Addr // the peer's address when it is not TCP's (conn.remoteAddr)
	bad     uint16   // loop-only: malformed frames' score, see malformed (read.go)
	holds   uint8    // loop-only: why frames wait unread, holdAuth|holdHandover (read.go)
	creds   uint8    // loop-only, a client's: what answered its credentials so far (auth.go)
	leaving bool     // loop-only, a client's: the server said it is going away, close once no call waits
}

// newConn makes a connection of side s, owned by o: s's server, or a
// client, whose connections keep it in their connExtra.
func newConn(s *side, o owner, id uint64) *conn {
	c := &conn{side: s, id: id, idx: -1}
	if s.owner != o {
		c.extra().owner = o
	}
	if s.cfg.rateLimit > 0 {
		c.extra().limiter = rate.NewLimiter(rate.Limit(s.cfg.rateLimit), s.cfg.rateBurst)
	}
	c.lastRecv.Store(time.Now().UnixNano())
	return c
}

// owner returns what owns the connection: its server, or its Client.
func (c *conn) owner() owner {
	if o := c.side.owner; o != nil {
		return o
	}
	return c.x.Load().owner // newConn set it
}

// setRemote keeps the peer's address, from any goroutine before the
// connection is shared.
func (c *conn) setRemote(a net.Addr) {
	if t, ok := a.(*net.TCPAddr); ok && t != nil {
		c.raddr = t
	} else if a != nil {
		c.extra().remote = a
	}
}

// remoteAddr returns the peer's address as setRemote kept it, or nil. It is
// safe for concurrent use.
func (c *conn) remoteAddr() net.Addr {
	if c.raddr != nil {
		return c.raddr
	}
	if x := c.x.Load(); x != nil && x.remote != nil {
		return x.remote
	}
	return nil
}

// layered returns the connection's layer, or nil for plain TCP. Loop-only.
func (c *conn) layered() *layered {
	if x := c.x.Load(); x != nil {
		return x.tl
	}
	return nil
}

// layerMaker returns what makes the connection's transport layer, or nil
// for plain TCP. On the loop, from OnOpen.
func (c *conn) layerMaker() func(*conn) layer {
	if x := c.x.Load(); x != nil {
		return x.newLayer
	}
	return nil
}

// extra returns the connection's lazily allocated part, allocating it on
// first use. It is safe for concurrent use.
func (c *conn) extra() *connExtra {
	if x := c.x.Load(); x != nil {
		return x
	}
	x := new(connExtra)
	if c.x.CompareAndSwap(nil, x) {
		return x
	}
	return c.x.Load()
}

// ID returns the net id. It is safe for concurrent use.
func (c *conn) ID() uint64 { return c.id }

// RemoteAddr returns the peer's address, copied when the connection opened.
// It is safe for concurrent use.
func (c *conn) RemoteAddr() string {
	if a := c.remoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Value returns the application value. It is safe for concurrent use.
func (c *conn) Value() any {
	x := c.x.Load()
	if x == nil {
		return nil
	}
	x.valMu.Lock()
	defer x.valMu.Unlock()
	return x.val
}

// SetValue stores the application value. It is safe for concurrent use.
func (c *conn) SetValue(v any) {
	x := c.extra()
	x.valMu.Lock()
	x.val = v
	x.valMu.Unlock()
}

// Load returns the value stored under key (handler.Store). It is safe for
// concurrent use.
func (c *conn) Load(key any) (any, bool) {
	x := c.x.Load()
	if x == nil {
		return nil, false
	}
	x.valMu.Lock()
	defer x.valMu.Unlock()
	v, ok := x.vals[key]
	return v, ok
}

// Store stores value under key, or removes it for nil (handler.Store). It
// is safe for concurrent use.
func (c *conn) Store(key, value any) {
	x := c.extra()
	x.valMu.Lock()
	defer x.valMu.Unlock()
	x.vals = storeValue(x.vals, key, value)
}

func storeValue(m map[any]any, key, value any) map[any]any {
	if value == nil {
		delete(m, key)
		return m
	}
	if m == nil {
		m = make(map[any]any)
	}
	m[key] = value
	return m
}

// Context returns the connection's context, made on first use: cancelled
// with the disconnect reason when the connection closes. It is safe for
// concurrent use.
func (c *conn) Context() context.Context {
	x := c.extra()
	x.valMu.Lock()
	defer x.valMu.Unlock()
	if x.ctx == nil {
		x.ctx, x.cancel = context.WithCancelCause(handler.WithConn(context.Background(), c))
		if c.closed.Load() {
			x.cancel(ErrClosed)
		}
	}
	return x.ctx
}

// cancelContext cancels the connection's context, if it was made.
func (c *conn) cancelContext(reason error) {
	x := c.x.Load()
	if x == nil {
		return
	}
	x.valMu.Lock()
	cancel := x.cancel
	x.valMu.Unlock()
	if cancel != nil {
		cancel(reason)
	}
}

// pendingCalls returns the number of calls waiting for a reply.
func (c *conn) pendingCalls() int {
	if x := c.x.Load(); x != nil {
		return x.calls.len()
	}
	return 0
}

// wire returns the byte stream the frames use: gnet's connection, or the
// layer's plaintext. Loop-only.
func (c *conn) wire() wire {
	if tl := c.layered(); tl != nil {
		return tl
	}
	return c.gc
}

// outbound is wire().OutboundBuffered without an interface conversion: it
// runs for every frame the loop writes.
func (c *conn) outbound() int {
	if tl := c.layered(); tl != nil {
		return tl.OutboundBuffered()
	}
	return c.gc.OutboundBuffered()
}

// write is wire().Write, as outbound is.
func (c *conn) write(b []byte) (int, error) {
	if tl := c.layered(); tl != nil {
		return tl.Write(b)
	}
	return c.wireWrite(b)
}

// wireWrite writes wire bytes to gnet, counting them for the write
// deadline: every byte handed to gnet, a frame's or a layer's, is counted
// here, so that written less what gnet holds is what the kernel took
// (sweep.go). Loop-only.
func (c *conn) wireWrite(b []byte) (int, error) {
	c.loop.stats.publish() // the peer may answer what it reads: the counts go first
	c.written += uint32(len(b))
	return c.gc.Write(b) // gnet copies what the socket does not take
}

// layerOut writes what a layer makes by itself (a pong, a close frame, a
// TLS alert or close_notify) under the same cap as the frames: past
// WithMaxOutbound the slow-consumer policy applies, dropping it (SlowDrop)
// or closing the connection (SlowClose, the error then returned). A
// handshake's bytes are counted, not capped: their size is the server's
// own (a certificate chain), once per connection, and a cap smaller than
// them would refuse every peer. It also writes a layer's last words as the connection closes
// (gnet writes them before it closes the socket). Loop-only.
func (c *conn) layerOut(b []byte) error {
	if tl := c.layered(); tl != nil && tl.ready && c.used()+len(b) > c.side.cfg.maxOutbound {
		if c.side.cfg.slowPolicy == SlowDrop {
			c.side.dropped.Add(1)
			return nil
		}
		c.closeNow(ErrSlowConsumer)
		return ErrSlowConsumer
	}
	_, err := c.wireWrite(b)
	return err
}
