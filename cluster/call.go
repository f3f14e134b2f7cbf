package cluster

// This file holds what waits for an answer from another node: calls by
// net id and queries, in one table keyed by the request number at the end
// of their reply subject; and the other side, calls relayed from other
// nodes to this node's connections.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// request is a call or a query waiting for its answer. It ends once,
// through whoever takes it from the table first: its answer, NATS's "no
// responders", its context, the peer going down, the bus going down, or
// the node shutting down.
type request struct {
	peer   *peer
	expect kind
	finish func(e *envelope, err error)
	stop   func() bool // the context's AfterFunc, once watched
	cancel context.CancelFunc
}

// end runs the request's outcome; the caller has taken it.
func (r *request) end(e *envelope, err error) {
	if r.stop != nil {
		r.stop()
	}
	r.cancel()
	r.finish(e, err)
}

func (n *Node) register(p *peer, expect kind, finish func(*envelope, error), cancel context.CancelFunc) (uint64, error) {
	n.pendMu.Lock()
	defer n.pendMu.Unlock()
	if len(n.pend) >= n.cfg.maxPending {
		return 0, ErrBusFull
	}
	n.seq++
	n.pend[n.seq] = &request{peer: p, expect: expect, finish: finish, cancel: cancel}
	return n.seq, nil
}

// take removes request seq from the table; nil if it has ended.
func (n *Node) take(seq uint64) *request {
	n.pendMu.Lock()
	r := n.pend[seq]
	delete(n.pend, seq)
	n.pendMu.Unlock()
	return r
}

// watch sets the AfterFunc of a request, or stops it if the request has
// already ended.
func (n *Node) watch(seq uint64, stop func() bool) {
	n.pendMu.Lock()
	if r, ok := n.pend[seq]; ok {
		r.stop = stop
		n.pendMu.Unlock()
		return
	}
	n.pendMu.Unlock()
	stop()
}

// takeIf takes the requests for which keep is false.
func (n *Node) takeIf(drop func(*request) bool) []*request {
	n.pendMu.Lock()
	defer n.pendMu.Unlock()
	var out []*request
	for seq, r := range n.pend {
		if drop(r) {
			out = append(out, r)
			delete(n.pend, seq)
		}
	}
	return out
}

// failPeer ends what waits on a peer that went down: its connections are
// gone with it.
func (n *Node) failPeer(p *peer, reason error) {
	err := fmt.Errorf("%w: %w", reason, engine.ErrUnknownConn)
	for _, r := range n.takeIf(func(r *request) bool { return r.peer == p }) {
		r.end(nil, err)
	}
}

// failAll ends everything that waits.
func (n *Node) failAll(err error) {
	for _, r := range n.takeIf(func(*request) bool { return true }) {
		r.end(nil, err)
	}
}

// ask sends a request to p; finish runs once with the answer or the
// error. build appends the request to dst given the time left. A nil
// return means finish will run. With inline, for a caller that waits for
// the answer anyway, the request goes to NATS from the caller's goroutine
// when nothing is queued before it (one goroutine hand-off less);
// otherwise it is queued for the publisher, without waiting.
func (n *Node) ask(ctx context.Context, p *peer, expect kind, inline bool, build func(dst []byte, left time.Duration) []byte,
	finish func(*envelope, error)) error {
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, n.cfg.callTime)
	}
	if err := ctx.Err(); err != nil {
		cancel()
		return err
	}
	deadline, _ := ctx.Deadline()
	left := time.Until(deadline)
	if left < time.Microsecond {
		left = time.Microsecond
	}
	seq, err := n.register(p, expect, finish, cancel)
	if err != nil {
		cancel()
		return err
	}
	m := outMsg{subject: p.subject, reply: n.subj.replyPrefix + strconv.FormatUint(seq, 10), data: build(nil, left), seq: seq}
	if err := n.send(m, inline); err != nil {
		if n.take(seq) == nil {
			return nil // ended meanwhile (the peer or the bus went down): finish has its error
		}
		cancel()
		return err
	}
	n.watch(seq, context.AfterFunc(ctx, func() {
		if r := n.take(seq); r != nil {
			r.end(nil, ctx.Err())
		}
	}))
	return nil
}

// onAnswer ends the request a reply or an answer is for.
func (n *Node) onAnswer(p *peer, e *envelope, subject string) {
	seq, ok := seqOf(subject, n.subj.replyPrefix)
	if !ok {
		n.bad(badMalformed, "answer with a bad reply subject", "subject", subject)
		return
	}
	n.pendMu.Lock()
	r := n.pend[seq]
	if r != nil && r.peer == p && r.expect == e.kind {
		delete(n.pend, seq)
	} else {
		r = nil
	}
	n.pendMu.Unlock()
	if r == nil {
		n.bad(badLate, "answer to nothing waiting", "from", e.node, "seq", seq)
		return
	}
	r.end(e, nil)
}

// noResponders ends a request NATS could deliver to no one: the peer's
// subscription is gone, so the peer is.
func (n *Node) noResponders(subject string) {
	seq, ok := seqOf(subject, n.subj.replyPrefix)
	if !ok {
		n.bad(badMalformed, "status message with a bad reply subject", "subject", subject)
		return
	}
	if r := n.take(seq); r != nil {
		r.end(nil, fmt.Errorf("%w: %w", ErrNoResponders, engine.ErrUnknownConn))
	} else {
		n.bad(badLate, "no-responders status for nothing waiting", "seq", seq)
	}
}

// ---- Calls by net id ----

// askConn sends a call (or, when call is false, a send that asks for a
// receipt) with the object obj to the node that holds net id id, and runs
// done once with the outcome, having decoded a result into resp (which may
// be nil). what names it in errors. A nil return means done will run.
func (n *Node) askConn(ctx context.Context, id uint64, op codec.Opcode, what string, obj []byte, call, inline bool,
	resp any, done func(error)) error {
	p, err := n.route(id)
	if err != nil {
		return err
	}
	finish := func(e *envelope, err error) {
		if err == nil {
			err = replyError(e)
		}
		if err == nil && resp != nil {
			if err = codec.Unmarshal(e.obj, resp); err != nil {
				err = fmt.Errorf("decode reply: %w", err)
			}
		}
		if err != nil {
			err = fmt.Errorf("cluster: %s opcode %d to net id %d on node %d: %w", what, op, id, p.node, err)
		}
		done(err)
	}
	build := func(dst []byte, left time.Duration) []byte {
		if call {
			return appendCall(dst, n.node, n.epoch, id, op, left, obj)
		}
		return appendFrame(dst, kindSend, n.node, n.epoch, id, op, "", obj)
	}
	return n.ask(ctx, p, kindReply, inline, build, finish)
}

// route returns the peer that holds net id id, or why there is none.
func (n *Node) route(id uint64) (*peer, error) {
	if err := n.running(); err != nil {
		return nil, err
	}
	if !n.busUp.Load() {
		return nil, ErrBusDown
	}
	node := NodeOf(id)
	p := n.peerOf(node)
	if p == nil {
		return nil, fmt.Errorf("node %d: %w: %w", node, ErrNodeDown, engine.ErrUnknownConn)
	}
	if counterOf(id) < p.epoch {
		return nil, fmt.Errorf("net id %d is from an earlier boot of node %d: %w", id, node, engine.ErrUnknownConn)
	}
	return p, nil
}

// statusErrors maps the outcomes of a remote call to the sentinels they
// matched on the node that relayed it.
var statusErrors = [statusEnd]error{
	statusUnknown:  engine.ErrUnknownConn,
	statusClosed:   engine.ErrClosed,
	statusDeadline: context.DeadlineExceeded,
	statusCanceled: context.Canceled,
	statusFull:     engine.ErrOutboundFull,
	statusTooLarge: codec.ErrFrameTooLarge,
	statusShutdown: engine.ErrServerClosed,
	statusBusy:     ErrBusFull,
}

// replyError returns the error a reply carries, or nil for a result.
func replyError(e *envelope) error {
	switch e.status {
	case statusOK:
		return nil
	case statusFailure:
		return handler.FromWire(e.reason, string(e.text))
	case statusOther:
		return fmt.Errorf("node %d: %s", e.node, e.text)
	}
	if len(e.text) > 0 {
		return fmt.Errorf("node %d: %s: %w", e.node, e.text, statusErrors[e.status])
	}
	return statusErrors[e.status]
}

// statusOf classifies the outcome of a relayed call for the caller's node.
func statusOf(err error) uint8 {
	if handler.ReasonOf(err) != "" {
		return statusFailure
	}
	for s, target := range statusErrors {
		if target != nil && errors.Is(err, target) {
			return uint8(s)
		}
	}
	return statusOther
}

// relayCall hands a call from another node to the connection it is for.
// On the dispatcher; the answer is queued from where the engine runs the
// call's callback, which never waits.
func (n *Node) relayCall(p *peer, e *envelope, reply string) {
	if len(reply) <= len(p.replyPrefix) || reply[:len(p.replyPrefix)] != p.replyPrefix {
		n.bad(badMalformed, "call without its node's reply subject", "from", e.node, "reply", reply)
		return
	}
	if !n.holds(e.id) {
		n.bad(badUnknownConn, "call to a net id this node never gave out", "id", e.id)
		n.answerCall(reply, fmt.Errorf("net id %d: %w", e.id, engine.ErrUnknownConn), nil)
		return
	}
	if n.relayed.Add(1) > int64(n.cfg.maxPending) {
		n.relayed.Add(-1)
		n.answerCall(reply, ErrBusFull, nil)
		return
	}
	ctx, cancel := context.WithTimeout(n.life, e.timeout)
	err := n.host.CallAsync(ctx, e.id, e.op, e.obj, func(obj []byte, err error) {
		cancel()
		n.relayed.Add(-1)
		n.answerCall(reply, err, obj)
	})
	if err != nil {
		cancel()
		n.relayed.Add(-1)
		if errors.Is(err, engine.ErrUnknownConn) {
			n.bad(badUnknownConn, "call to a connection that is gone", "id", e.id)
		}
		n.answerCall(reply, err, nil)
	}
}

// answerCall queues the outcome of a relayed call.
func (n *Node) answerCall(reply string, err error, obj []byte) {
	if err == nil {
		if len(obj) == 0 {
			obj = []byte("{}")
		}
		n.reply(reply, appendReply(nil, n.node, n.epoch, statusOK, obj, "", ""))
		return
	}
	st := statusOf(err)
	switch st {
	case statusFailure:
		f := handler.Failure(err)
		n.reply(reply, appendReply(nil, n.node, n.epoch, st, nil, f.Reason, f.Message))
	case statusOther:
		n.reply(reply, appendReply(nil, n.node, n.epoch, st, nil, "", err.Error()))
	default:
		n.reply(reply, appendReply(nil, n.node, n.epoch, st, nil, "", ""))
	}
}

// ---- Queries ----

// wireQuery maps the engine's query kinds to the bus's.
var wireQuery = map[engine.QueryKind]uint8{
	engine.QueryLen:      queryLen,
	engine.QueryMembers:  queryMembers,
	engine.QueryIdentity: queryIdentity,
	engine.QueryConns:    queryConns,
}

// Query implements engine.Backend: it asks every other node that is up,
// in parallel, for its part of q, and returns their answers merged: the
// sum of their counts, or their net ids in increasing order. A node that
// goes down meanwhile is left out: it and its connections have left. It
// waits until every answer is in or ctx ends (without a deadline,
// [WithCallTimeout] bounds it); on error the answer covers the nodes that
// answered.
func (n *Node) Query(ctx context.Context, q engine.Query) (engine.Answer, error) {
	var a engine.Answer
	wq, ok := wireQuery[q.Kind]
	if !ok {
		return a, fmt.Errorf("cluster: query: unknown kind %d", q.Kind)
	}
	if (wq == queryMembers || wq == queryIdentity) && (q.Name == "" || len(q.Name) > maxQueryName) {
		return a, fmt.Errorf("cluster: query: a name of 1 to %d bytes is needed, not %d", maxQueryName, len(q.Name))
	}
	res, err := n.queryAll(ctx, wq, q.Name)
	for _, e := range res {
		if wq == queryLen {
			if c, ok := count(e); ok {
				a.Count += int(c)
			}
			continue
		}
		for b := e.text; len(b) >= 8; b = b[8:] {
			// A node answers for its own connections only.
			if id := binary.BigEndian.Uint64(b); NodeOf(id) == e.node && counterOf(id) >= e.epoch {
				a.IDs = append(a.IDs, id)
			}
		}
	}
	slices.Sort(a.IDs)
	a.Count += len(a.IDs)
	if err != nil {
		return a, fmt.Errorf("cluster: query: %w", err)
	}
	return a, nil
}

// queryAll asks every node that is up, in parallel, and returns the
// answers. A node that goes down meanwhile is left out: it and its
// connections have left. It waits until every answer is in or ctx ends.
func (n *Node) queryAll(ctx context.Context, q uint8, name string) ([]*envelope, error) {
	if err := n.running(); err != nil {
		return nil, err
	}
	peers := *n.peers.Load()
	if len(peers) == 0 {
		return nil, nil
	}
	if !n.busUp.Load() {
		return nil, ErrBusDown
	}
	type result struct {
		e   *envelope
		err error
	}
	ch := make(chan result, len(peers))
	asked := 0
	var firstErr error
	for _, p := range peers {
		err := n.ask(ctx, p, kindAnswer, true, func(dst []byte, _ time.Duration) []byte {
			return appendQuery(dst, n.node, n.epoch, q, name)
		}, func(e *envelope, err error) { ch <- result{e, err} })
		if err != nil {
			firstErr = err
			break
		}
		asked++
	}
	var out []*envelope
	for range asked {
		r := <-ch
		switch {
		case r.err == nil && r.e.status == statusOK:
			out = append(out, r.e)
		case r.err == nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("node %d: %s", r.e.node, r.e.text)
			}
		case errors.Is(r.err, ErrNodeDown):
		default:
			if firstErr == nil {
				firstErr = r.err
			}
		}
	}
	return out, firstErr
}

// engineQuery maps the bus's query kinds to the engine's.
var engineQuery = [queryEnd]engine.QueryKind{
	queryLen:      engine.QueryLen,
	queryMembers:  engine.QueryMembers,
	queryIdentity: engine.QueryIdentity,
	queryConns:    engine.QueryConns,
}

// answerQuery answers a query of another node about this one, from its
// server's own connections.
func (n *Node) answerQuery(p *peer, e *envelope, reply string) {
	if len(reply) <= len(p.replyPrefix) || reply[:len(p.replyPrefix)] != p.replyPrefix {
		n.bad(badMalformed, "query without its node's reply subject", "from", e.node, "reply", reply)
		return
	}
	a := n.host.Answer(engine.Query{Kind: engineQuery[e.query], Name: e.group})
	b := appendAnswer(nil, n.node, n.epoch, statusOK)
	if e.query == queryLen {
		b = binary.BigEndian.AppendUint64(b, uint64(a.Count))
	} else {
		for _, id := range a.IDs {
			b = binary.BigEndian.AppendUint64(b, id)
		}
		if len(b) > n.maxPayload {
			b = append(appendAnswer(nil, n.node, n.epoch, statusOther), "too many connections for one NATS message"...)
		}
	}
	n.reply(reply, b)
}

// count reads the count of an answer.
func count(e *envelope) (uint64, bool) {
	if len(e.text) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(e.text), true
}
