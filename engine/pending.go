// This file holds the table of calls waiting for their replies on one
// connection: one place registers a call, one takes it, one fails them all,
// as net/rpc's pending map does.

package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/simplerpc/simplerpc/codec"
)

// callResult is what ends a call: the reply's data or an error.
type callResult struct {
	data []byte
	err  error
}

// pending is a call waiting for its reply: a Call's result channel, or
// what a CallAsync runs when its call ends.
type pending struct {
	ch    chan callResult
	async *asyncCall
}

// asyncCall is a CallAsync in flight.
type asyncCall struct {
	op   codec.Opcode
	resp any
	done func(error)
	ctx  context.Context
	// stop stops the context's AfterFunc. CallAsync sets it through
	// pendingTable.watch while the call is in the table; whoever takes the
	// call out reads it after, with no lock.
	stop func() bool
}

// pendingTable maps call ids to the calls waiting for them. Whoever takes
// a call out of the table (its reply, its deadline, the connection's
// close) ends it, so every call ends exactly once. It is safe for
// concurrent use.
type pendingTable struct {
	mu      sync.Mutex // guards m, seq, shut, retired
	m       map[uint64]pending
	seq     uint64
	shut    bool // failAll ran: the connection is closed
	retired bool // retire ran: its client makes new calls on another connection
}

// errRetired refuses a call, before anything is sent, on a connection that
// is no longer its client's (one let go after a go-away, or one replaced
// after a drop): the client makes the call again on its current
// connection (Client.Call), which is newer. A call made on that
// connection itself (a callback's) fails with it: it is ErrClosed there.
var errRetired = fmt.Errorf("%w: the client moved to a newer connection", ErrClosed)

// register adds a call and returns its id; it fails with ErrClosed once the
// table is shut (the connection closed) and errRetired once it is retired.
func (t *pendingTable) register(p pending) (id uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.retired: // shut since, maybe: the client has a newer connection either way
		return 0, errRetired
	case t.shut:
		return 0, ErrClosed
	}
	if t.m == nil {
		t.m = make(map[uint64]pending)
	}
	t.seq++
	t.m[t.seq] = p
	return t.seq, nil
}

// retire refuses new calls from now on, and reports whether no call waits:
// under the table's lock, so that no call can slip in between the look and
// the client's going (-8) that follows it.
func (t *pendingTable) retire() (idle bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retired = true
	return len(t.m) == 0
}

// retiredIdle reports whether the table is retired and no call waits: the
// connection may be let go.
func (t *pendingTable) retiredIdle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.retired && len(t.m) == 0
}

// take removes call id and returns it; ok is false if it was not there.
func (t *pendingTable) take(id uint64) (p pending, ok bool) {
	t.mu.Lock()
	p, ok = t.m[id]
	delete(t.m, id)
	t.mu.Unlock()
	return p, ok
}

// has reports whether call id still waits.
func (t *pendingTable) has(id uint64) bool {
	t.mu.Lock()
	_, ok := t.m[id]
	t.mu.Unlock()
	return ok
}

// watch sets stop on the asynchronous call id if it is still in the table,
// and reports whether it did.
func (t *pendingTable) watch(id uint64, stop func() bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.m[id]
	if ok {
		p.async.stop = stop
	}
	return ok
}

// len returns the number of calls waiting.
func (t *pendingTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// shutAll shuts the table and returns every call that was waiting: the
// caller fails them. Calls registered after it are refused.
func (t *pendingTable) shutAll() map[uint64]pending {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.m
	t.m, t.shut = nil, true
	return m
}

// sequence returns the id of the last call registered: what a handover
// carries, so that the successor's ids continue from it.
func (t *pendingTable) sequence() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// continueFrom makes the ids of calls registered from now on follow seq
// (a predecessor's sequence, [pendingTable.sequence]).
func (t *pendingTable) continueFrom(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq = max(t.seq, seq)
}
