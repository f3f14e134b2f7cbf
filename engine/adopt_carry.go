// This file holds the successor's side of the sends a handover carries:
// the frames the predecessor carried are written to each adopted
// connection before anything of its own, and the sends to all and to
// groups the successor makes while it adopts are replayed to the
// connections adopted after.

package engine

import (
	"slices"
	"sync"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/internal/handoverwire"
)

// adoptCarry holds, on the successor, the frames carried for the
// connections it adopts until they are ready, and which are; and the sends
// to all and to groups it makes meanwhile, for the connections it adopts
// later: they were the predecessor's then, and get them too.
type adoptCarry struct {
	mu      sync.Mutex
	pending map[uint64][][]byte
	live    map[uint64]*conn
	queued  map[uint64]*carriedWrite // a live connection's frames not written yet
	log     []loggedShared           // the sends to all and to groups made so far, in order
	done    map[*loop]int64          // the last of them each loop ran
}

// loggedShared is a send to all or to a group made during an adoption,
// and where it went: the loops it was queued on, a group's members there.
type loggedShared struct {
	seq     int64
	op      codec.Opcode
	obj     []byte
	exclude uint64
	group   string
	loops   []*loop
	members map[*loop][]*conn
}

// end forgets what was never delivered: connections that were not
// adopted. Adopt calls it last.
func (a *adoptCarry) end() {
	a.mu.Lock()
	a.pending, a.live, a.queued, a.log, a.done = nil, nil, nil, nil, nil
	a.mu.Unlock()
}

// sharedTargets returns the loops a send to all or to a group goes to, a
// group's members on each, and, while the server adopts connections, the
// send's place in the log (else 0). From any goroutine.
func (s *Server) sharedTargets(op codec.Opcode, obj []byte, except uint64, group string) ([]*loop, map[*loop][]*conn, int64) {
	a := s.side.adopt.Load()
	if a != nil {
		// The loops and members are taken with the log's lock, so that a
		// connection made live meanwhile is either among them or replays
		// the send (replay).
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	loops := s.side.eachLoop()
	var members map[*loop][]*conn
	if group != "" {
		members = s.groupMembers(group)
	}
	if a == nil || a.done == nil {
		return loops, members, 0
	}
	seq := int64(len(a.log)) + 1
	a.log = append(a.log, loggedShared{seq: seq, op: op, obj: obj, exclude: except, group: group, loops: loops, members: members})
	return loops, members, seq
}

// carriedWrite is what a live connection's loop has yet to write of the
// frames carried to it: the batches that come meanwhile join it, so that
// a loop behind its batches writes each connection once for all of them.
type carriedWrite struct {
	frames [][]byte
}

// deliver writes the runs of frames carried in a batch to the
// connections they are for: on its loop behind what is queued for it, or,
// for a connection not ready yet, once it is. The connections that get
// the same runs (a send to all) share one copy of them, never changed.
func (a *adoptCarry) deliver(runs [][]byte, to []handoverwire.To) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		return
	}
	if a.queued == nil {
		a.queued = make(map[uint64]*carriedWrite)
	}
	var last []int
	var joined []byte
	for _, t := range to {
		if last == nil || !slices.Equal(t.Frames, last) {
			last, joined = t.Frames, joinRuns(runs, t.Frames)
		}
		c := a.live[t.ID]
		switch w := a.queued[t.ID]; {
		case c == nil:
			a.pending[t.ID] = append(a.pending[t.ID], joined)
		case w != nil:
			w.frames = append(w.frames, joined)
		default:
			w = &carriedWrite{frames: [][]byte{joined}}
			a.queued[t.ID] = w
			_ = c.loop.enqueue(task{kind: taskFunc, fn: func() {
				a.mu.Lock()
				delete(a.queued, c.id)
				fs := w.frames
				a.mu.Unlock()
				if !c.closed.Load() {
					c.writeCarried(fs)
				}
			}}, nil)
		}
	}
}

// joinRuns returns the runs at indices idx in one piece: the run itself
// when there is one.
func joinRuns(runs [][]byte, idx []int) []byte {
	if len(idx) == 1 {
		return runs[idx[0]]
	}
	n := 0
	for _, i := range idx {
		n += len(runs[i])
	}
	b := make([]byte, 0, n)
	for _, i := range idx {
		b = append(b, runs[i]...)
	}
	return b
}

// writeCarried writes frames carried from a predecessor, whole frames at
// c's size, shared with other connections: in one write when nothing is
// before them, else behind what is. On c's loop.
func (c *conn) writeCarried(fs [][]byte) {
	b := fs[0]
	if len(fs) > 1 {
		b = slices.Concat(fs...)
	}
	x := c.x.Load()
	if c.outLen() > 0 || x != nil && x.credit.blocked() || c.outSize <= 0 || len(b)%int(c.outSize) != 0 {
		c.bufferFrame(b) // copies
		return
	}
	if !c.overLimit(len(b)) {
		c.putFrames(b, len(b)/int(c.outSize), nil)
	}
}

// ran notes that loop l ran the logged send seq. On l.
func (a *adoptCarry) ran(l *loop, seq int64) {
	a.mu.Lock()
	if a.done != nil {
		a.done[l] = seq
	}
	a.mu.Unlock()
}

// ready writes the frames carried for c so far before anything else, and
// has later ones follow behind. On c's loop.
func (a *adoptCarry) ready(c *conn) {
	a.mu.Lock()
	if a.live == nil {
		a.mu.Unlock()
		return
	}
	a.live[c.id] = c
	fs := a.pending[c.id]
	delete(a.pending, c.id)
	a.mu.Unlock()
	for _, f := range fs {
		c.bufferFrame(f)
	}
}

// replay writes to c, adopted with rc and now in its groups, the sends to
// all and to its groups made here before it was live that will not reach
// it: those its loop ran already, those queued where it is not, and a
// group's whose members did not include it. On c's loop, before the
// connection is reached by sends to all.
func (a *adoptCarry) replay(c *conn, rc *handedConn) {
	a.mu.Lock()
	if a.done == nil {
		a.mu.Unlock()
		return
	}
	log, done := a.log, a.done[c.loop]
	a.mu.Unlock()
	for _, e := range log {
		if c.id == e.exclude || e.group != "" && !slices.Contains(rc.Groups, e.group) {
			continue
		}
		queued := slices.Contains(e.loops, c.loop) && e.seq > done
		if queued && (e.group == "" || slices.Contains(e.members[c.loop], c)) {
			continue // its loop will write it to c
		}
		f, err := codec.AppendValidated(nil, int(c.outSize), e.op, e.obj)
		if err != nil {
			c.side.unfit.Add(1)
			continue
		}
		c.bufferFrame(f)
	}
}
