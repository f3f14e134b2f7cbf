package cluster

// This file holds what arrives from the bus: one goroutine reads every
// subscription of the node from one channel, in the order NATS delivered
// them, checks each message and acts on it. Nothing it does waits: sends
// to the node's connections are queued by the engine, answers by the
// publisher.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/simplerpc/simplerpc/engine"
)

// Subject classes.
const (
	subOwn uint8 = iota
	subAll
	subPresence
	subReply
	subOther
)

// allowed says which kinds may arrive on which subject class.
var allowed = [subOther][kindEnd]bool{
	subOwn:      {kindProbe: true, kindSend: true, kindCall: true, kindQuery: true, kindClose: true},
	subAll:      {kindAll: true, kindGroup: true},
	subPresence: {kindHello: true, kindBeat: true, kindBye: true},
	subReply:    {kindReply: true, kindAnswer: true},
}

func (n *Node) classify(subject string) uint8 {
	switch subject {
	case n.subj.own:
		return subOwn
	case n.subj.all:
		return subAll
	case n.subj.presence:
		return subPresence
	}
	if strings.HasPrefix(subject, n.subj.replyPrefix) {
		return subReply
	}
	return subOther
}

// handle acts on one message from the bus.
func (n *Node) handle(m *nats.Msg) {
	cls := n.classify(m.Subject)
	if cls != subPresence {
		n.st.received.Add(1)
	}
	if cls == subOther {
		n.bad(badMalformed, "message on a subject the node does not use", "subject", m.Subject)
		return
	}
	if cls == subReply && len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		n.noResponders(m.Subject)
		return
	}
	e, err := decode(m.Data)
	if err == nil && !allowed[cls][e.kind] {
		err = fmt.Errorf("%w: a %v on a subject that kind does not use", errMalformed, e.kind)
	}
	if err != nil {
		n.bad(badMalformed, "message that does not decode", "subject", m.Subject, "bytes", len(m.Data), "err", err)
		return
	}
	if e.node == n.node {
		if e.epoch == n.epoch && (cls == subAll || cls == subPresence) {
			return // its own broadcast, on a NATS connection with echo
		}
		n.bad(badConflict, "message with this node's number from another process", "kind", e.kind, "epoch", e.epoch)
		return
	}
	switch e.kind {
	case kindHello, kindBeat:
		n.onPresence(&e)
		return
	case kindBye:
		n.onBye(&e)
		return
	case kindProbe:
		n.answerProbe(m.Reply)
		return
	}
	p := n.peerOf(e.node)
	if p == nil || p.epoch != e.epoch {
		n.bad(badUnknownNode, "message from a node that is not up", "kind", e.kind, "from", e.node, "epoch", e.epoch)
		n.fromUnknown(&e, m.Reply)
		return
	}
	switch e.kind {
	case kindSend:
		n.deliverSend(p, &e, m.Reply)
	case kindAll:
		n.deliverShared(&e, "")
	case kindGroup:
		n.deliverShared(&e, e.group)
	case kindCall:
		n.relayCall(p, &e, m.Reply)
	case kindQuery:
		n.answerQuery(p, &e, m.Reply)
	case kindClose:
		n.closeConn(&e)
	case kindReply, kindAnswer:
		n.onAnswer(p, &e, m.Subject)
	}
}

// fromUnknown handles a message from a node this one does not take for
// up: one that took it for down (a heartbeat timeout on a loaded
// machine) while it took this one for up, or that is newer than its last
// heartbeat here. A request is answered with an error at once, rather
// than left to its deadline; and this node asks for presence (a hello,
// at most once a heartbeat interval), so that each hears the other again
// within a round trip. A message not from the node it names is answered
// on its reply subject only if that subject is the named node's.
func (n *Node) fromUnknown(e *envelope, reply string) {
	if e.epoch >= n.maxEpochOf(e.node) {
		now := n.cfg.now().UnixNano()
		if last := n.lastAsk.Load(); now-last >= int64(n.cfg.interval) && n.lastAsk.CompareAndSwap(last, now) {
			n.helloDue.Store(true)
			n.kickPublisher()
		}
	}
	prefix := replyPrefix(n.cfg.prefix, e.node, e.epoch)
	if len(reply) <= len(prefix) || reply[:len(prefix)] != prefix {
		return
	}
	text := fmt.Sprintf("node %d does not take node %d (epoch %d) for up", n.node, e.node, e.epoch)
	switch e.kind {
	case kindCall, kindSend:
		n.reply(reply, appendReply(nil, n.node, n.epoch, statusOther, nil, "", text))
	case kindQuery:
		n.reply(reply, append(appendAnswer(nil, n.node, n.epoch, statusOther), text...))
	}
}

// holds reports whether a net id is one this node's current boot gave out.
func (n *Node) holds(id uint64) bool {
	return NodeOf(id) == n.node && counterOf(id) >= n.epoch
}

// deliverSend hands a send by net id to the engine. A send with a reply
// subject (from [Node.SendConfirm]) is answered with the outcome, as a
// call is.
func (n *Node) deliverSend(p *peer, e *envelope, reply string) {
	if reply != "" && (len(reply) <= len(p.replyPrefix) || reply[:len(p.replyPrefix)] != p.replyPrefix) {
		n.bad(badMalformed, "send without its node's reply subject", "from", e.node, "reply", reply)
		return
	}
	var err error
	if !n.holds(e.id) {
		n.bad(badUnknownConn, "send to a net id this node never gave out", "id", e.id)
		err = fmt.Errorf("net id %d: %w", e.id, engine.ErrUnknownConn)
	} else if err = n.host.Send(e.id, e.op, e.obj); errors.Is(err, engine.ErrUnknownConn) {
		n.bad(badUnknownConn, "send to a connection that is gone", "id", e.id)
	} else if err != nil {
		n.bad(badUndeliverable, "send the engine refused", "id", e.id, "err", err)
	}
	if reply != "" {
		n.answerCall(reply, err, nil)
	}
}

// closeConn closes a connection of this node, as another node's handle
// for it asked.
func (n *Node) closeConn(e *envelope) {
	if !n.holds(e.id) {
		n.bad(badUnknownConn, "close of a net id this node never gave out", "id", e.id)
	} else if err := n.host.Close(e.id); err != nil {
		n.bad(badUnknownConn, "close of a connection that is gone", "id", e.id, "err", err)
	}
}

// deliverShared hands a send to all or to a group to the server, for its
// own connections: one task per event loop, whatever the number of
// connections. The object is the message's, which nothing else writes.
func (n *Node) deliverShared(e *envelope, group string) {
	err := n.host.Deliver(engine.Publication{Op: e.op, Obj: e.obj, Group: group, Except: e.id})
	if err != nil {
		n.bad(badUndeliverable, "broadcast the engine refused", "err", err)
	}
}

func (n *Node) answerProbe(reply string) {
	if reply == "" {
		n.bad(badMalformed, "probe without a reply subject")
		return
	}
	n.reply(reply, appendAnswer(nil, n.node, n.epoch, statusOK))
}

// reply queues an answer to another node's request.
func (n *Node) reply(subject string, data []byte) {
	if err := n.enqueueAnswer(outMsg{subject: subject, data: data}); err != nil {
		n.bad(badDropped, "answer not sent", "err", err)
	}
}

// ---- Counters and the log ----

// What the node counts and logs.
const (
	badMalformed = iota
	badUnknownNode
	badUnknownConn
	badUndeliverable
	badLate
	badDropped
	badConflict
	badEnd
)

var badWarn = [badEnd]bool{badMalformed: true, badUnknownNode: true, badDropped: true, badConflict: true}

type counters struct {
	published atomic.Uint64
	received  atomic.Uint64
	bad       [badEnd]atomic.Uint64
	lastLog   [badEnd]atomic.Int64 // UnixNano of the last record
}

// bad counts one event of kind k and logs it, at most once a second per
// kind: a flood of bad messages must not flood the log.
func (n *Node) bad(k int, msg string, attrs ...any) {
	total := n.st.bad[k].Add(1)
	now := time.Now().UnixNano()
	last := n.st.lastLog[k].Load()
	if now-last < int64(time.Second) || !n.st.lastLog[k].CompareAndSwap(last, now) {
		return
	}
	attrs = append(attrs, "node", n.node, "total", total)
	if badWarn[k] {
		n.log.Warn("simplerpc cluster: "+msg, attrs...)
	} else {
		n.log.Debug("simplerpc cluster: "+msg, attrs...)
	}
}

// Stats are counters of a node's cross-node traffic.
type Stats struct {
	// Published counts the messages handed to NATS, presence (hellos,
	// heartbeats, goodbyes) aside: one per cross-node send, call, answer,
	// or send to all or to a group, whatever the number of connections.
	Published uint64
	// Received counts the messages read from the node's subjects,
	// presence aside.
	Received uint64
	// Malformed counts received messages that do not decode, or came on
	// a subject their kind does not use; none is acted on.
	Malformed uint64
	// UnknownNode counts received messages from a node that is not up, or
	// from an earlier boot of one; none is acted on.
	UnknownNode uint64
	// UnknownConn counts sends and calls for a net id the node does not
	// hold (any more); calls are answered with engine.ErrUnknownConn.
	UnknownConn uint64
	// Undeliverable counts received frames the engine refused: too large
	// for the connection's message size, its outbound queue full, ...
	Undeliverable uint64
	// Late counts answers that found nothing waiting: after their call
	// ended, or bogus.
	Late uint64
	// Dropped counts messages NATS refused (connection closed, reconnect
	// buffer full, over its maximum payload) and answers not sent.
	Dropped uint64
	// SlowConsumer counts messages NATS dropped because the node's inbound
	// queue was full.
	SlowConsumer uint64
	// Conflicts counts messages with this node's number from another
	// process, or with an older epoch of a live node.
	Conflicts uint64
	// Queued is the number of bytes waiting for the publisher.
	Queued int
	// Pending is the number of cross-node calls and queries waiting for
	// an answer.
	Pending int
	// Relayed is the number of calls from other nodes waiting on this
	// node's connections.
	Relayed int
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := Stats{
		Published:     n.st.published.Load(),
		Received:      n.st.received.Load(),
		Malformed:     n.st.bad[badMalformed].Load(),
		UnknownNode:   n.st.bad[badUnknownNode].Load(),
		UnknownConn:   n.st.bad[badUnknownConn].Load(),
		Undeliverable: n.st.bad[badUndeliverable].Load(),
		Late:          n.st.bad[badLate].Load(),
		Dropped:       n.st.bad[badDropped].Load(),
		Conflicts:     n.st.bad[badConflict].Load(),
		Queued:        int(n.queued.Load()),
		Relayed:       int(n.relayed.Load()),
	}
	for _, sub := range n.subscriptions() {
		if d, err := sub.Dropped(); err == nil {
			s.SlowConsumer += uint64(d)
		}
	}
	n.pendMu.Lock()
	s.Pending = len(n.pend)
	n.pendMu.Unlock()
	return s
}

// seqOf reads the request number at the end of a reply subject.
func seqOf(subject, prefix string) (uint64, bool) {
	seq, err := strconv.ParseUint(subject[len(prefix):], 10, 64)
	return seq, err == nil && seq != 0
}
