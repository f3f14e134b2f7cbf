package cluster

// This file holds the Node: its construction, its lifecycle (start and
// stop, which its server calls) and two of the goroutines it owns: the
// dispatcher of what arrives from the bus, and the control loop
// (heartbeats, expiry of silent nodes, NATS status, node callbacks). The
// publisher is in publisher.go.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simplerpc/simplerpc/engine"
)

// Node states.
const (
	stateNew int32 = iota
	stateStarting
	stateRunning
	stateClosed
)

// Queue lengths between NATS and the node's goroutines. The outbound one
// is bounded in bytes by WithMaxQueued as well.
const (
	outQueue = 8192
	inQueue  = 8192
)

// Node is the backend of one server of a cluster (engine.Backend): set
// with engine.WithBackend, it makes the server's sends, groups, calls and
// lookups reach the connections of every node of the cluster, over a NATS
// connection, and gives out net ids that name the node (see [NodeOf]).
// The application keeps using the server's own methods
// (engine.ServerOf(c) in a handler); the node adds what only a cluster
// has: the nodes up ([Node.Nodes]), their callbacks, its counters.
//
// The server delivers to its own connections itself, as fast as with the
// engine alone. Cross-node traffic is queued, bounded, to one publisher
// goroutine, so no caller ever waits on NATS; what arrives from NATS is
// handled by one goroutine, in order. docs/CLUSTER.md gives the
// semantics, the subjects and the timeouts.
//
// It is safe for concurrent use by multiple goroutines.
type Node struct {
	host  *engine.Host // set once, by Attach
	nc    *nats.Conn
	node  int
	epoch uint64
	ids   *idGen
	cfg   options
	log   *slog.Logger
	subj  subjects

	attached atomic.Bool
	state    atomic.Int32
	busUp    atomic.Bool

	peersMu   sync.Mutex // guards writes of peers, and maxEpoch
	peers     atomic.Pointer[map[int]*peer]
	maxEpoch  map[int]uint64
	remoteCnt atomic.Int32 // len(*peers)

	// Outbound: the publisher's queue and its flags.
	out      chan outMsg
	queued   atomic.Int64 // bytes in out
	kick     chan struct{}
	helloDue atomic.Bool
	lastAsk  atomic.Int64 // UnixNano of the last hello asked by fromUnknown
	beatDue  atomic.Bool
	byeDue   atomic.Bool

	// Inbound.
	in         chan *nats.Msg
	subsMu     sync.Mutex // guards subs
	subs       []*nats.Subscription
	maxPayload int

	pendMu sync.Mutex // guards pend and seq
	pend   map[uint64]*request
	seq    uint64

	relayed    atomic.Int64
	life       context.Context // ends relayed calls at shutdown
	endLife    context.CancelFunc
	statusCh   chan nats.Status
	goStarted  atomic.Bool // the goroutines run
	evMu       sync.Mutex  // guards events
	events     []nodeEvent
	evKick     chan struct{}
	st         counters
	stopIn     chan struct{}
	stopPub    chan struct{}
	stopCtl    chan struct{}
	inDone     chan struct{}
	pubDone    chan struct{}
	ctlDone    chan struct{}
	done       chan struct{} // closed when Shutdown has finished
	closeOnce  sync.Once
	shutdownMu sync.Mutex // serialises Shutdown and Start's failure path
}

// subjects are the NATS subjects of one node (docs/CLUSTER.md,
// "Subjects").
type subjects struct {
	prefix      string
	all         string // <p>.all: send to all, groups
	presence    string // <p>.presence: hello, heartbeat, bye
	own         string // <p>.node.<n>: this node's directed traffic
	replyPrefix string // <p>.reply.<n>.<epoch>.: replies to this node
}

func newSubjects(prefix string, node int, epoch uint64) subjects {
	return subjects{
		prefix:      prefix,
		all:         prefix + ".all",
		presence:    prefix + ".presence",
		own:         nodeSubject(prefix, node),
		replyPrefix: replyPrefix(prefix, node, epoch),
	}
}

func nodeSubject(prefix string, node int) string {
	return prefix + ".node." + strconv.Itoa(node)
}

func replyPrefix(prefix string, node int, epoch uint64) string {
	return prefix + ".reply." + strconv.Itoa(node) + "." + strconv.FormatUint(epoch, 10) + "."
}

// New returns a node of the cluster on nc with node number node (1 to
// [MaxNode], unique in the cluster: the server's start fails with
// [ErrNodeTaken] otherwise), to be given to one server with
// engine.WithBackend. It applies the defaults, then opts, and returns an
// error wrapping [ErrInvalidOption] for a bad value.
//
// The node uses nc but does not own it: it adds subscriptions and a status
// listener when its server starts, removes them when its server shuts
// down, and never closes nc. nc's own reconnect settings apply;
// docs/CLUSTER.md suggests some.
func New(nc *nats.Conn, node int, opts ...Option) (*Node, error) {
	if nc == nil {
		return nil, invalidOption("NATS connection", "nil")
	}
	if node < 1 || node > MaxNode {
		return nil, invalidOption("node number", node)
	}
	cfg := defaultOptions()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		nc: nc, node: node, cfg: cfg, log: cfg.logger,
		maxEpoch: make(map[int]uint64),
		out:      make(chan outMsg, outQueue),
		kick:     make(chan struct{}, 1),
		in:       make(chan *nats.Msg, inQueue),
		pend:     make(map[uint64]*request),
		evKick:   make(chan struct{}, 1),
		stopIn:   make(chan struct{}), stopPub: make(chan struct{}), stopCtl: make(chan struct{}),
		inDone: make(chan struct{}), pubDone: make(chan struct{}), ctlDone: make(chan struct{}),
		done: make(chan struct{}),
	}
	n.ids = newIDGen(node, cfg.now)
	n.epoch = n.ids.epoch
	n.subj = newSubjects(cfg.prefix, node, n.epoch)
	n.peers.Store(&map[int]*peer{})
	n.life, n.endLife = context.WithCancel(context.Background())
	return n, nil
}

// Attach implements engine.Backend: NewServer calls it once, with the
// server the node serves. A node serves one server.
func (n *Node) Attach(h *engine.Host) error {
	if h == nil {
		return errors.New("cluster: attach: nil host")
	}
	if !n.attached.CompareAndSwap(false, true) {
		return errors.New("cluster: attach: the node already serves a server")
	}
	n.host = h
	return nil
}

// NetID implements engine.Backend: the net id of a new connection, which
// names this node (see [NodeOf]) and is never reused, even across
// restarts. It runs on an event loop for every accepted connection: one
// clock read and one compare-and-swap.
func (n *Node) NetID() uint64 { return n.ids.next() }

// Number returns the node's number.
func (n *Node) Number() int { return n.node }

// Epoch returns the node's epoch: the first counter value of its net ids
// in this boot (docs/CLUSTER.md, "Net ids"), different at every boot.
func (n *Node) Epoch() uint64 { return n.epoch }

// Start implements engine.Backend: the server calls it when it starts,
// before it accepts a connection. The node checks that no live node has
// its number (it fails with [ErrNodeTaken]), subscribes to its subjects
// and announces itself. It fails with [ErrBusDown] when nc is not
// connected. A node starts once: after a failed start it stays closed,
// and its server's later starts fail too (make a new node and server).
func (n *Node) Start(ctx context.Context) error {
	if n.host == nil {
		return errors.New("cluster: start: the node serves no server (engine.WithBackend)")
	}
	if !n.state.CompareAndSwap(stateNew, stateStarting) {
		return errors.New("cluster: node already started")
	}
	n.shutdownMu.Lock()
	err := n.start(ctx)
	if err != nil {
		n.teardownLocked(context.Background())
	}
	n.shutdownMu.Unlock()
	if err != nil {
		return fmt.Errorf("cluster: start node %d: %w", n.node, err)
	}
	if !n.state.CompareAndSwap(stateStarting, stateRunning) {
		return fmt.Errorf("cluster: start node %d: %w", n.node, engine.ErrServerClosed) // Stop meanwhile
	}
	n.beatDue.Store(true) // with the address the server may have by now
	n.kickPublisher()
	return nil
}

func (n *Node) start(ctx context.Context) error {
	if !n.nc.IsConnected() {
		return ErrBusDown
	}
	if !n.nc.HeadersSupported() {
		// Without headers there is no "no responders" status, which the
		// start probe and the prompt failure of calls to a dead node use.
		return errors.New("the NATS server does not support headers (v2.2 or later is needed)")
	}
	if err := n.probe(ctx); err != nil {
		return err
	}
	n.maxPayload = int(n.nc.MaxPayload())
	n.statusCh = n.nc.StatusChanged()
	for _, s := range []string{n.subj.own, n.subj.all, n.subj.presence, n.subj.replyPrefix + "*"} {
		sub, err := n.nc.ChanSubscribe(s, n.in)
		if err != nil {
			return fmt.Errorf("subscribe to %s: %w", s, err)
		}
		n.subsMu.Lock()
		n.subs = append(n.subs, sub)
		n.subsMu.Unlock()
	}
	fctx, cancel := context.WithTimeout(ctx, n.cfg.timeout)
	defer cancel()
	if err := n.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("flush subscriptions: %w", err)
	}
	n.busUp.Store(n.nc.IsConnected())
	// The hello goes out before anything the publisher is given.
	n.helloDue.Store(true)
	n.goStarted.Store(true)
	go n.dispatcher()
	go n.publisher()
	go n.control()
	n.kickPublisher()
	return nil
}

// probe asks the node subject whether another process answers it, on a
// reply subject of its own (nats.go's request helpers would leave a
// subscription behind on a connection the node does not own).
func (n *Node) probe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, n.cfg.timeout)
	defer cancel()
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return fmt.Errorf("probe node number: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(n.subj.own, inbox, appendHeader(nil, kindProbe, n.node, n.epoch)); err != nil {
		return fmt.Errorf("probe node number: %w", err)
	}
	m, err := sub.NextMsgWithContext(pctx)
	switch {
	case errors.Is(err, nats.ErrNoResponders), err == nil && len(m.Data) == 0 && m.Header.Get("Status") == "503":
		return nil
	case err == nil:
		return ErrNodeTaken
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		// Something listens on the subject and does not answer.
		return fmt.Errorf("%w: node %d's subject has a subscriber that does not answer", ErrNodeTaken, n.node)
	}
	return fmt.Errorf("probe node number: %w", err)
}

// Stop implements engine.Backend: the server calls it once it shuts
// down, after its own connections closed (so the calls relayed to them
// from other nodes have ended). The node says goodbye, so that the other
// nodes take it for down at once, fails the cross-node calls and queries
// still waiting with engine.ErrServerClosed, stops its goroutines and
// removes its subscriptions; nc stays open. ctx bounds the flush of what
// it still had queued. Later calls wait for the first to finish.
func (n *Node) Stop(ctx context.Context) error {
	first := false
	n.closeOnce.Do(func() { first = true })
	if !first {
		select {
		case <-n.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if n.state.Swap(stateClosed) == stateRunning {
		n.byeDue.Store(true)
	}
	n.teardown(ctx)
	return nil
}

// teardown stops what start started, in order: subscriptions and the
// dispatcher, what waits for answers, the publisher (after the queue and
// the goodbye), the control loop.
func (n *Node) teardown(ctx context.Context) {
	n.shutdownMu.Lock()
	defer n.shutdownMu.Unlock()
	n.teardownLocked(ctx)
}

func (n *Node) teardownLocked(ctx context.Context) {
	select {
	case <-n.done:
		return
	default:
	}
	n.state.Store(stateClosed)
	for _, s := range n.subscriptions() {
		_ = s.Unsubscribe()
	}
	started := n.goStarted.Load()
	close(n.stopIn)
	if started {
		<-n.inDone
	}
	n.endLife()
	n.failAll(engine.ErrServerClosed)
	close(n.stopPub)
	if started {
		<-n.pubDone
		if n.nc.IsConnected() {
			fctx, cancel := context.WithTimeout(ctx, n.cfg.interval)
			if _, ok := ctx.Deadline(); !ok || ctx.Err() != nil {
				cancel()
				fctx, cancel = context.WithTimeout(context.Background(), n.cfg.interval)
			}
			_ = n.nc.FlushWithContext(fctx)
			cancel()
		}
	}
	close(n.stopCtl)
	if started {
		<-n.ctlDone
	}
	if n.statusCh != nil {
		n.nc.RemoveStatusListener(n.statusCh)
	}
	close(n.done)
}

func (n *Node) subscriptions() []*nats.Subscription {
	n.subsMu.Lock()
	defer n.subsMu.Unlock()
	return n.subs
}

// running returns nil when the node can take cross-node traffic.
func (n *Node) running() error {
	switch n.state.Load() {
	case stateRunning:
		return nil
	case stateClosed:
		return engine.ErrServerClosed
	}
	return errNotStarted
}

var errNotStarted = errors.New("cluster: node not started")

// localLen returns the number of the server's own connections.
func (n *Node) localLen() int {
	if n.host == nil {
		return 0
	}
	return n.host.Answer(engine.Query{Kind: engine.QueryLen}).Count
}

// localAddr returns the address the server listens on, for the
// heartbeats, or "" before it listens.
func (n *Node) localAddr() string {
	if n.host != nil {
		if a := n.host.Addr(); a != nil {
			return a.String()
		}
	}
	return ""
}

// ---- The dispatcher ----

func (n *Node) dispatcher() {
	defer close(n.inDone)
	for {
		select {
		case m := <-n.in:
			n.handle(m)
		case <-n.stopIn:
			return
		}
	}
}

// ---- The control loop ----

func (n *Node) control() {
	defer close(n.ctlDone)
	t := time.NewTicker(n.cfg.interval)
	defer t.Stop()
	status := n.statusCh
	for {
		select {
		case <-t.C:
			if n.busUp.Load() {
				n.beatDue.Store(true)
				n.kickPublisher()
			}
			n.sweep()
		case s, ok := <-status:
			if !ok {
				status = nil
				continue
			}
			n.onStatus(s)
		case <-n.evKick:
			n.runEvents()
		case <-n.stopCtl:
			n.runEvents()
			return
		}
	}
}

// onStatus follows the NATS connection. Calls waiting for an answer fail
// when it drops: NATS keeps nothing for a disconnected subscriber, so
// their answers are lost.
func (n *Node) onStatus(s nats.Status) {
	switch s {
	case nats.CONNECTED:
		if !n.busUp.Swap(true) {
			n.log.Info("simplerpc cluster: NATS connected", "node", n.node)
		}
		n.helloDue.Store(true)
		n.kickPublisher()
	case nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED:
		if n.busUp.Swap(false) {
			n.log.Warn("simplerpc cluster: NATS connection lost", "node", n.node, "status", s.String())
		}
		n.failAll(ErrBusDown)
	}
}
