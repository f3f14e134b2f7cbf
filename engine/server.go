// This file holds the Server: its lifecycle (start, drain, shutdown) and
// what it sends by net id or to everyone.

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/time/rate"

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
// It is safe for concurrent use by multiple goroutines.
type Server struct {
	side   side
	state  atomic.Int32
	nextID atomic.Uint64
	nconns atomic.Int64
	conns  registry // net id -> *conn

	groupsMu sync.RWMutex // guards groups
	groups   map[string]map[uint64]*conn

	cli      *gnet.Client               // the event loops; the server accepts on its own (accept.go)
	lns      []net.Listener             // set by StartOn, before it returns
	addrs    atomic.Pointer[[]net.Addr] // the listeners', once serving
	accept   sync.WaitGroup             // the acceptors
	done     chan struct{}              // closed once the server has stopped
	runErr   error                      // set before done is closed
	stop     chan struct{}              // closed when Shutdown begins
	once     sync.Once
	doneOnce sync.Once
	errMu    sync.Mutex // guards stopErr
	stopErr  error      // why the server stopped on its own, if it did

	authState
	goingAway  atomic.Bool   // GoAway was called
	addrLimits *addrLimits   // nil without limits per address
	emptyMu    sync.Mutex    // guards empty
	empty      chan struct{} // closed when the last connection has closed during a shutdown
	hand       handAccept    // a handover's pause of the acceptors (handover.go)

	host Host       // what Host returns (host.go)
	be   Backend    // WithBackend's, or nil for a server alone
	beMu sync.Mutex // guards beOn
	beOn bool       // be was started and not stopped yet
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
	cfg.deriveBuffered()
	if cfg.maxConns == 0 {
		cfg.maxConns = defaultMaxConns()
	}
	s := &Server{done: make(chan struct{}), stop: make(chan struct{}), empty: make(chan struct{})}
	if cfg.maxPerAddr > 0 || cfg.ratePerAddr > 0 {
		s.addrLimits = &addrLimits{max: cfg.maxPerAddr, every: rate.Limit(cfg.ratePerAddr), burst: cfg.burstPerAddr}
	}
	s.side = side{cfg: cfg, router: r, closedErr: ErrServerClosed, owner: s}
	s.authCtx, s.authStop = context.WithCancel(context.Background())
	s.side.initWarnings()
	s.authFails.msg = "simplerpc: authentications failed"
	s.host.s = s
	if b := cfg.backend; b != nil {
		if err := b.Attach(&s.host); err != nil {
			s.authStop()
			return nil, fmt.Errorf("engine: attach the backend: %w", err)
		}
		s.be = b
	}
	return s, nil
}

// Serve listens on addr ("127.0.0.1:30000", "tcp://...", "unix:///path",
// "tls://..." with [WithTLS], "ws://host:port/path", "wss://...") and on
// each of more, one server for all of them (one set of net ids, groups and
// sends to all), and serves until ctx is cancelled or [Server.Shutdown] is
// called: the original's blocking start(). It returns [ErrServerClosed]
// after a shutdown, or the error that stopped it. When ctx is cancelled
// the server shuts down gracefully within the grace period of
// [WithGracePeriod].
func (s *Server) Serve(ctx context.Context, addr string, more ...string) error {
	if err := s.Start(ctx, addr, more...); err != nil {
		return err
	}
	<-s.done
	return s.runErr
}

// Start listens on addr, and on each of more (see [Server.Serve]), and
// returns once the server accepts connections on all of them (if one
// cannot be listened on, none is); the server runs in the background
// until ctx is cancelled (a graceful shutdown within [WithGracePeriod]) or
// [Server.Shutdown] is called. A server can be started once.
func (s *Server) Start(ctx context.Context, addr string, more ...string) error {
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, a := range append([]string{addr}, more...) {
		ln, err := s.side.cfg.listenAddr(ctx, a)
		if err != nil {
			closeAll()
			return err
		}
		lns = append(lns, ln)
	}
	if err := s.StartOn(ctx, lns...); err != nil {
		closeAll()
		return err
	}
	return nil
}

// StartOn serves connections accepted from the listeners, which the server
// then owns and closes when it shuts down: sockets a service manager handed
// over (systemd's socket activation), or listeners made elsewhere. It
// returns at once, and the server runs as after [Server.Start]. The
// listeners must be TCP or Unix stream listeners (*net.TCPListener,
// *net.UnixListener). With a [Backend], it starts the backend first
// (unless [Server.Adopt] did), and fails if that fails.
func (s *Server) StartOn(ctx context.Context, lns ...net.Listener) error {
	if len(lns) == 0 {
		return errors.New("engine: start: no listener")
	}
	layers := make([]func(*conn) layer, len(lns))
	for i, ln := range lns {
		var err error
		if layers[i], err = s.side.cfg.layerFor(ln); err != nil {
			return err
		}
	}
	if err := s.startBackend(ctx); err != nil {
		return err
	}
	cfg := &s.side.cfg
	if !s.hand.loopsOnly.CompareAndSwap(true, false) { // else Adopt started the loops
		if !s.state.CompareAndSwap(stateNew, stateRunning) {
			return errors.New("engine: server already started")
		}
		cli, err := startLoops(&serverEvents{s: s}, &s.side)
		if err != nil {
			s.state.Store(stateNew)
			return err
		}
		s.cli = cli
		if cfg.workers > 0 {
			s.side.pool = newPool(cfg.workers)
		}
	}
	s.lns = lns
	addrs := make([]net.Addr, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr()
	}
	s.addrs.Store(&addrs) // after the pool: Stats reads it once this is set
	for i, ln := range lns {
		s.accept.Add(1)
		go s.acceptLoop(ln, layers[i])
	}
	if every := cfg.sweepEvery(); every > 0 {
		go s.sweep(every)
	}
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), cfg.grace)
			defer cancel()
			_ = s.Shutdown(sctx)
		case <-s.done:
		}
	}()
	return nil
}

// Addr returns the address the server listens on, with the port the system
// chose for ":0" (the first listener's, for [Server.StartOn] with several).
// It is nil before [Server.Start] returns.
func (s *Server) Addr() net.Addr {
	if a := s.addrs.Load(); a != nil {
		return (*a)[0]
	}
	return nil
}

// Addrs returns the addresses of every listener the server serves, in the
// order [Server.Start] or [Server.StartOn] got them, with the ports the
// system chose. It is nil before Start returns. It is safe for concurrent
// use.
func (s *Server) Addrs() []net.Addr {
	if a := s.addrs.Load(); a != nil {
		return append([]net.Addr(nil), (*a)...)
	}
	return nil
}

// Len returns the number of this server's open connections: the
// original's len(server.connections). It is cheap, where Stats gathers
// every counter. It counts local connections only, with a [Backend] too;
// [Server.LenContext] counts the cluster's.
func (s *Server) Len() int { return int(s.nconns.Load()) }

// EventLoops returns the number of event loops the server runs
// ([WithEventLoops]), for the process's own sizing: GOMAXPROCS should be
// higher (OPERATIONS.md, "CPUs: a P beside the event loops"). Safe from
// any goroutine.
func (s *Server) EventLoops() int { return s.side.cfg.loops }

// Conn returns the open connection with net id id. With a [Backend], a
// connection another server holds is found too: its handle sends and calls
// through the backend (see [Backend].Conn).
func (s *Server) Conn(id uint64) (handler.Conn, bool) {
	if c := s.conns.load(id); c != nil {
		return c, true
	}
	if s.be != nil {
		rc, err := s.be.Conn(id)
		return rc, err == nil
	}
	return nil, false
}

// Conns returns this server's open connections, in no particular order:
// the original's server.connections. It is a snapshot: connections may
// close or open as soon as it returns. It lists local connections only,
// with a [Backend] too; [Server.ConnsContext] lists the cluster's.
func (s *Server) Conns() []handler.Conn {
	return s.conns.all()
}

// ServerOf returns the server a connection belongs to: how a callback
// reaches its server (its groups, SendAll) without capturing a variable
// that the server's own construction assigns. It returns nil for a
// client's connection or a Conn the engine did not make, a [Backend]'s
// handle for another server's connection included (reach the cluster
// through the server of the connection whose callback runs). It is safe
// from any goroutine.
func ServerOf(c handler.Conn) *Server {
	if c, ok := c.(*conn); ok {
		if s, ok := c.owner().(*Server); ok {
			return s
		}
	}
	return nil
}

func (s *Server) lookup(id uint64) (*conn, error) {
	if s.state.Load() == stateShutdown {
		return nil, ErrServerClosed
	}
	c := s.conns.load(id)
	if c == nil {
		return s.side.lookupMoved(id) // unknown, or moved in a handover (handover_carry.go)
	}
	return c, nil
}

// Send sends v on opcode op to the connection with net id id: the
// original's rpc(net_id, ...). An unknown or closed id returns an error
// wrapping [ErrUnknownConn] or [ErrClosed]; the frame goes nowhere else.
// With a [Backend], an id another server holds is sent to through the
// backend.
func (s *Server) Send(id uint64, op codec.Opcode, v any) error {
	c, err := s.lookup(id)
	if err != nil {
		rc, err := s.remote(id, err)
		if rc != nil {
			return rc.Send(op, v)
		}
		return fmt.Errorf("engine: send opcode %d: %w", op, err)
	}
	return c.Send(op, v)
}

// Call sends a request to connection id and waits for the reply, decoding
// it into resp. See [handler.Conn] for the rules. With a [Backend], an id
// another server holds is called through the backend.
func (s *Server) Call(ctx context.Context, id uint64, op codec.Opcode, req, resp any) error {
	c, err := s.lookup(id)
	if err != nil {
		rc, err := s.remote(id, err)
		if rc != nil {
			return rc.Call(ctx, op, req, resp)
		}
		return fmt.Errorf("engine: call opcode %d: %w", op, err)
	}
	return c.Call(ctx, op, req, resp)
}

// remote returns the backend's handle for id, which lookup did not find
// here (err), or the error to return: lookup's, or the backend's reason
// for no handle.
func (s *Server) remote(id uint64, err error) (handler.Conn, error) {
	if s.be == nil || !errors.Is(err, ErrUnknownConn) {
		return nil, err
	}
	return s.be.Conn(id)
}

// SendAll sends v on opcode op to every open connection: the original's
// rpc_all. The JSON is encoded once; each event loop gets one task that
// writes the frame to each of its connections. With a [Backend], the
// same object is then published once to the other servers, whose
// connections get it too; the call never waits for them, and an error of
// the backend's is returned once this server's connections have the
// frame. When an event loop is more than [WithMaxOutbound]'s bytes behind
// in such sends, it fails with an error wrapping [ErrOutboundFull] and
// reaches no connection. It is safe from any goroutine.
func (s *Server) SendAll(op codec.Opcode, v any) error {
	return s.sendShared(op, v, 0, "")
}

// SendAllExcept sends v to every open connection but the one with net id
// except: a chat message to everyone but its sender. With a [Backend] it
// reaches every server's connections, as [Server.SendAll].
func (s *Server) SendAllExcept(except uint64, op codec.Opcode, v any) error {
	return s.sendShared(op, v, except, "")
}

// SendAllRaw sends the encoded JSON object obj on opcode op to every open
// connection; obj is validated and copied, never re-encoded: the way to
// relay a broadcast as it was received. With a [Backend] it reaches every
// server's connections, as [Server.SendAll].
func (s *Server) SendAllRaw(op codec.Opcode, obj []byte) error {
	obj, err := codec.Object(obj)
	if err != nil {
		return fmt.Errorf("engine: send opcode %d to all: %w", op, err)
	}
	return s.sendSharedObj(op, clone(obj), 0, "")
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

func (s *Server) sendShared(op codec.Opcode, v any, except uint64, group string) error {
	obj, err := codec.Marshal(v)
	if err == nil {
		err = s.sendSharedObj(op, obj, except, group)
	}
	if err != nil {
		to := "all"
		if group != "" {
			to = strconv.Quote(group)
		}
		return fmt.Errorf("engine: send opcode %d to %s: %w", op, to, err)
	}
	return nil
}

// sendSharedObj delivers a valid, owned object to this server's
// connections, then publishes it through the backend, if any: the object
// is the backend's to keep, since nothing writes it again.
func (s *Server) sendSharedObj(op codec.Opcode, obj []byte, except uint64, group string) error {
	err := s.deliver(op, obj, except, group)
	if s.be == nil || (err != nil && !errors.Is(err, errMovedMissed)) {
		return err
	}
	if perr := s.be.Publish(Publication{Op: op, Obj: obj, Group: group, Except: except}); perr != nil && err == nil {
		err = fmt.Errorf("publish: %w", perr)
	}
	return err
}

// deliver queues one task per loop for a valid, owned object: a send to
// this server's connections only.
func (s *Server) deliver(op codec.Opcode, obj []byte, except uint64, group string) error {
	if s.state.Load() == stateShutdown {
		return ErrServerClosed
	}
	if n := len(obj) + opLen(op); n > s.side.cfg.size {
		// What the server's own message size cannot hold reaches no
		// connection at that size: the caller is told, rather than the
		// log once per connection.
		return fmt.Errorf("%w: %d bytes, the server's message size is %d", codec.ErrFrameTooLarge, n, s.side.cfg.size)
	}
	charge := sharedCharge(obj)
	if err := s.side.sharedRoom(charge); err != nil {
		return err // the loops are that far behind: sent to none (sharedbound.go)
	}
	release, hold, ended, err := s.side.sharedOpen() // a handover's end waits for it (handover_carry.go)
	if err != nil {
		return err // a handover carries too much: sent to none
	}
	defer release()
	loops, members, seq := s.sharedTargets(op, obj, except, group) // logged while adopting (adopt_carry.go)
	for _, l := range loops {
		sh := &shared{obj: obj, exclude: except, group: group, late: ended, seq: seq, hold: hold}
		if group != "" {
			if sh.members = members[l]; sh.members == nil {
				if !s.side.handing() {
					continue
				}
				sh.members = []*conn{} // none here, but some may move here
			}
		}
		l.sharedQueued.Add(charge)
		if l.enqueue(task{kind: taskBroadcast, op: op, shared: sh, size: int(charge)}, nil) != nil {
			l.sharedQueued.Add(-charge) // the engine is stopping
		}
	}
	if ended {
		return errMovedMissed
	}
	return nil
}

// SetMessageSize changes the frame size of the connection with net id id
// (docs/PROTOCOL.md §3): the server sends -2 at the current size and
// switches its outbound size right after; the peer answers with its own -2
// and both directions then use n. n must lie within the protocol's limits
// ([codec.MinMessageSize], [codec.MaxMessageSize]) and the outbound cap; it
// may exceed the bounds of [WithSizeBounds], which are for what peers
// announce: the server accepts the size it chose back from that peer.
func (s *Server) SetMessageSize(id uint64, n int) error {
	c, err := s.lookup(id)
	if err == nil {
		err = c.setMessageSize(n)
	}
	if err != nil {
		return fmt.Errorf("engine: set message size of net id %d: %w", id, err)
	}
	return nil
}

// ---- The server as its connections' owner ----

// newID returns the net id of a new connection: the backend's, if any.
func (s *Server) newID() uint64 {
	if s.be != nil {
		return s.be.NetID()
	}
	return s.nextID.Add(1)
}

// ready registers a new connection, announces the size and runs the
// connect callback. On its loop.
func (s *Server) ready(c *conn) bool {
	if rc := c.adopting(); rc != nil {
		return s.readyAdopted(c, rc)
	}
	c.loop.add(c) // for the sweeps and the closes; broadcasts skip it until admitted
	if out, err := codec.AppendMessageSize(c.lend().b, int(c.outSize), int(c.outSize)); err == nil {
		c.out.b = out
		c.loop.stats.frameOut(codec.OpMessageSize, int(c.outSize))
	}
	if s.side.cfg.auth != nil {
		s.startAuth(c)
		return true
	}
	s.admit(c)
	return true
}

// admit makes a connection one of the server's: in its registry, reached
// by sends to all, and reported to the connect callback. On its loop.
func (s *Server) admit(c *conn) {
	s.conns.store(c)
	if log := s.side.cfg.logger; log.Enabled(context.Background(), slog.LevelDebug) { // no argument boxed per connection otherwise
		log.Debug("simplerpc: connection opened", "conn", c.id, "remote", c.RemoteAddr())
	}
	c.reported = true
	c.dispatch(job{kind: jobConnect}, nil)
}

// closed unregisters a connection; on its loop.
func (s *Server) closed(c *conn, _ error) {
	if l := s.addrLimits; l != nil {
		l.release(c.remoteAddr()) // admitted in enroll, whatever became of it
	}
	if c.started {
		c.loop.remove(c)
		s.conns.remove(c.id)
		s.leaveGroups(c)
		s.forgetIdentity(c)
	}
	if s.nconns.Add(-1) == 0 && (s.state.Load() == stateShutdown || s.goingAway.Load()) {
		s.signalEmpty()
	}
}

func (s *Server) send(c *conn, mode sendMode, op codec.Opcode, obj []byte, id uint64) error {
	if mode == modeSend {
		return s.side.sendMoving(c, op, obj, id) // carried if a handover moved c (handover_carry.go)
	}
	return c.enqueue(mode, op, obj, id)
}

func (s *Server) peer(c *conn) string { return "conn " + strconv.FormatUint(c.id, 10) }

// goAway handles a client's -8: it is leaving this connection (it moved to
// another after the server's own -8): what is queued for it goes out, then
// the connection closes. On the loop.
func (s *Server) goAway(c *conn) { c.closeWith(ErrGoAway) }

func (s *Server) refused(*conn, []byte) {} // a client's failures are the application's

func (s *Server) authed(*conn, []byte) {} // a client's -9 once authenticated: nothing to do
