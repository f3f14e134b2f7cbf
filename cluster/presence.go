package cluster

// This file holds presence: the table of the other nodes that are up,
// kept from their hellos, heartbeats and goodbyes, the expiry of silent
// ones, and the callbacks that report changes.

import (
	"context"
	"slices"
	"sync/atomic"
	"time"
)

// NodeInfo describes a node that is up, as [Node.Nodes] reports it.
type NodeInfo struct {
	// Node is the node number.
	Node int
	// Epoch names the node's boot (see [Node.Epoch]).
	Epoch uint64
	// Addr is the address its server listens on, as it reports it; empty
	// until it has started listening.
	Addr string
	// Conns is the number of its open connections: exact for this node,
	// as of its last heartbeat for the others (use [Node.Len] for an exact
	// count across the cluster).
	Conns int
	// LastSeen is when it was last heard from; for this node, now.
	LastSeen time.Time
	// Self is true for the node asked.
	Self bool
}

// peer is another node that is up. Its identity fields never change; a
// restarted node is a new peer.
type peer struct {
	node        int
	epoch       uint64
	subject     string // its node subject
	replyPrefix string // the reply subjects of its requests
	addr        atomic.Pointer[string]
	conns       atomic.Int64
	seen        atomic.Int64 // UnixNano
	// ctx ends when the peer goes down (or this node stops): the Context
	// of its connections' handles.
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (p *peer) info() NodeInfo {
	i := NodeInfo{Node: p.node, Epoch: p.epoch, Conns: int(p.conns.Load()), LastSeen: time.Unix(0, p.seen.Load())}
	if a := p.addr.Load(); a != nil {
		i.Addr = *a
	}
	return i
}

// nodeEvent is a change for the node callbacks.
type nodeEvent struct {
	info   NodeInfo
	up     bool
	reason error
}

// peerOf returns the peer with node number node, or nil.
func (n *Node) peerOf(node int) *peer { return (*n.peers.Load())[node] }

// Nodes returns the nodes that are up, this one included, by node number.
// It does not wait: the other nodes' entries are as of their last
// heartbeat.
func (n *Node) Nodes() []NodeInfo {
	m := *n.peers.Load()
	out := make([]NodeInfo, 0, len(m)+1)
	out = append(out, NodeInfo{Node: n.node, Epoch: n.epoch, Conns: n.localLen(), Addr: n.localAddr(), LastSeen: n.cfg.now(), Self: true})
	for _, p := range m {
		out = append(out, p.info())
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return a.Node - b.Node })
	return out
}

// onPresence handles a hello or a heartbeat from another node.
func (n *Node) onPresence(e *envelope) {
	if e.kind == kindHello {
		// Answer with a heartbeat, so the new node knows this one before
		// anything else from it: set before the peer is added, so that
		// whatever is queued for the new node after goes out after it.
		n.beatDue.Store(true)
		n.kickPublisher()
	}
	now := n.cfg.now().UnixNano()
	p := n.peerOf(e.node)
	if p != nil && p.epoch == e.epoch {
		p.seen.Store(now)
		p.conns.Store(int64(e.count))
		if a := p.addr.Load(); a == nil || *a != e.addr {
			p.addr.Store(&e.addr)
		}
		return
	}
	n.peersMu.Lock()
	if e.epoch < n.maxEpoch[e.node] {
		n.peersMu.Unlock()
		n.bad(badConflict, "presence from an earlier epoch of a node: two processes with one node number?",
			"from", e.node, "epoch", e.epoch)
		return
	}
	n.maxEpoch[e.node] = e.epoch
	old := n.peerOf(e.node)
	np := &peer{node: e.node, epoch: e.epoch, subject: nodeSubject(n.cfg.prefix, e.node),
		replyPrefix: replyPrefix(n.cfg.prefix, e.node, e.epoch)}
	np.ctx, np.cancel = context.WithCancelCause(n.life)
	np.seen.Store(now)
	np.conns.Store(int64(e.count))
	np.addr.Store(&e.addr)
	m := n.copyPeers()
	m[e.node] = np
	n.storePeers(m)
	n.peersMu.Unlock()
	if old != nil {
		n.peerDown(old, ErrNodeRestarted)
	}
	n.log.Info("simplerpc cluster: node up", "node", n.node, "peer", e.node, "epoch", e.epoch, "addr", e.addr)
	n.queueEvent(nodeEvent{info: np.info(), up: true})
}

// maxEpochOf returns the latest epoch of node num heard of.
func (n *Node) maxEpochOf(num int) uint64 {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	return n.maxEpoch[num]
}

// onBye handles a goodbye.
func (n *Node) onBye(e *envelope) {
	if p := n.peerOf(e.node); p != nil && p.epoch == e.epoch {
		n.removePeer(p, ErrNodeLeft)
	}
}

// sweep takes the nodes not heard from for the heartbeat timeout for
// down. On the control loop, every heartbeat interval.
func (n *Node) sweep() {
	limit := n.cfg.now().Add(-n.cfg.timeout).UnixNano()
	for _, p := range *n.peers.Load() {
		if p.seen.Load() < limit {
			n.removePeer(p, ErrHeartbeatTimeout)
		}
	}
}

// removePeer takes p out of the table, if it is still there.
func (n *Node) removePeer(p *peer, reason error) {
	n.peersMu.Lock()
	if n.peerOf(p.node) != p {
		n.peersMu.Unlock()
		return
	}
	m := n.copyPeers()
	delete(m, p.node)
	n.storePeers(m)
	n.peersMu.Unlock()
	n.peerDown(p, reason)
}

// peerDown fails what waits on a peer that is gone and reports it.
func (n *Node) peerDown(p *peer, reason error) {
	n.log.Info("simplerpc cluster: node down", "node", n.node, "peer", p.node, "epoch", p.epoch, "reason", reason)
	p.cancel(reason)
	n.failPeer(p, reason)
	n.queueEvent(nodeEvent{info: p.info(), reason: reason})
}

func (n *Node) copyPeers() map[int]*peer {
	old := *n.peers.Load()
	m := make(map[int]*peer, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	return m
}

func (n *Node) storePeers(m map[int]*peer) {
	n.peers.Store(&m)
	n.remoteCnt.Store(int32(len(m)))
}

func (n *Node) queueEvent(ev nodeEvent) {
	if (ev.up && n.cfg.onUp == nil) || (!ev.up && n.cfg.onDown == nil) {
		return
	}
	n.evMu.Lock()
	n.events = append(n.events, ev)
	n.evMu.Unlock()
	select {
	case n.evKick <- struct{}{}:
	default:
	}
}

// runEvents runs the node callbacks, in order. On the control loop.
func (n *Node) runEvents() {
	n.evMu.Lock()
	evs := n.events
	n.events = nil
	n.evMu.Unlock()
	for _, ev := range evs {
		n.safely(func() {
			if ev.up {
				n.cfg.onUp(ev.info)
			} else {
				n.cfg.onDown(ev.info, ev.reason)
			}
		})
	}
}

// safely runs a callback of the application, recovering a panic.
func (n *Node) safely(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("simplerpc cluster: callback panicked", "node", n.node, "panic", r)
		}
	}()
	fn()
}
