// This file holds the send to all and to a group on a loop: the frame
// built once per size, and the sends to all queued in a row written to
// each connection in one write.

package engine

import (
	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// shared is an encoded object sent to many connections: send-to-all and
// groups encode the JSON once per call.
type shared struct {
	obj     []byte
	exclude uint64     // a net id to skip (send to all but the sender), or 0
	members []*conn    // nil: every connection of the loop
	group   string     // the group's name, or "" for all
	late    bool       // made once a handover ended: not carried to the connections it moved
	seq     int64      // its place in an adoption's log, or 0 (adopt_carry.go)
	hold    *carryHold // what it took from a handover's bound, or nil (handover_carry.go)
	frames  [][]byte   // frames built for this loop, one per message size seen
}

// frame returns the frame for size, building it once per loop and size.
func (s *shared) frame(op codec.Opcode, size int) ([]byte, error) {
	for _, f := range s.frames {
		if len(f) == size {
			return f, nil
		}
	}
	f, err := codec.AppendValidated(nil, size, op, s.obj)
	if err != nil {
		return nil, err
	}
	s.frames = append(s.frames, f)
	return f, nil
}

// broadcast writes a shared frame to the loop's connections (or a group's
// members on this loop). It walks backwards: a failing write closes its
// connection at once, which removes it from l.conns by swapping in the last.
func (l *loop) broadcast(op codec.Opcode, s *shared) {
	list := s.members
	if list == nil {
		list = l.conns
	}
	for i := len(list) - 1; i >= 0; i-- {
		if i >= len(list) {
			continue
		}
		l.broadcastTo(list[i], op, s)
		if s.members == nil {
			list = l.conns
		}
	}
	l.handoverShared(op, s) // to the connections a handover moves (handover_carry.go)
}

// broadcastTo writes s's frame to c, if c is to have it.
func (l *loop) broadcastTo(c *conn, op codec.Opcode, s *shared) {
	if c.id == s.exclude || c.closed.Load() || c.loop != l || c.outSize == 0 || !c.reported {
		return
	}
	f, err := s.frame(op, int(c.outSize))
	if err != nil {
		l.side.unfit.Add(1)
		l.side.warnUnfit.warn(l.side.cfg.logger, "last", c.id, "size", c.outSize)
		return
	}
	c.writeFrame(f)
}

// fanRun is a run of sends to all that a batch of the loop's queue holds
// in a row: each connection gets their frames in one write, not one write
// each. A loop that falls behind a broadcaster then makes fewer, larger
// writes as it falls further, which is what lets it catch up: a write per
// frame per connection cost 83% of serve's CPU at 200 sends to all a
// second to 2,000 connections, most of it the kernel's per-write work
// (issue 30). Loop-only; its buffers are reused from run to run.
type fanRun struct {
	tasks   []task   // the run
	exclude []uint64 // the net ids some send of the run skips
	sizes   []fanSize
	resize  bool // a frame of the run is a -2, which a WebSocket's layer must see
	codec   wslayer.Codec
}

// fanSize is the frames of a run at one frame size, one after the other,
// and built once for the WebSocket connections that take it, the same
// frames as a server's text or binary messages.
type fanSize struct {
	size int
	b    []byte
	ok   bool // every frame of the run fits the size
	ws   [2][]byte
	wsOK [2]bool // ws[i] is built
}

// runBytes bounds the frames a run writes to one connection, at the
// server's frame size: a run of larger frames is shorter.
const runBytes = flushAt

// broadcastRun writes the sends to all at the start of tasks, if there are
// at least two in a row, and returns how many it wrote; below two it writes
// nothing and returns 0 or 1: the task is processed on its own.
func (l *loop) broadcastRun(tasks []task) int {
	n, most := 0, runBytes/max(l.side.cfg.size, 1)
	for n < len(tasks) && n < most && tasks[n].kind == taskBroadcast && tasks[n].shared.members == nil {
		n++
	}
	if n < 2 {
		return n
	}
	r := &l.fan
	r.tasks = tasks[:n]
	for _, t := range r.tasks {
		if t.shared.exclude != 0 {
			r.exclude = append(r.exclude, t.shared.exclude)
		}
		r.resize = r.resize || t.op == codec.OpMessageSize
	}
	list := l.conns
	for i := len(list) - 1; i >= 0; i-- {
		if i >= len(list) {
			continue
		}
		c := list[i]
		if c.closed.Load() || c.loop != l || c.outSize == 0 || !c.reported {
			continue
		}
		if fs := r.frames(c); fs != nil {
			c.putFrames(fs.b, len(r.tasks), r.wire(c, fs))
		} else {
			for _, t := range r.tasks {
				l.broadcastTo(c, t.op, t.shared)
			}
		}
		list = l.conns
	}
	for _, t := range r.tasks {
		l.handoverShared(t.op, t.shared)
		l.sharedQueued.Add(-int64(t.size)) // taken (sharedbound.go)
	}
	r.tasks, r.resize = nil, false
	r.exclude = r.exclude[:0]
	r.sizes = r.sizes[:0]
	return n
}

// frames returns the run's frames for c in one piece, or nil where c must
// have them one by one: a send of the run skips c, one does not fit its
// size, frames wait for credit before them, or all of them would pass the
// outbound limit (the slow-consumer policy then applies frame by frame).
func (r *fanRun) frames(c *conn) *fanSize {
	for _, id := range r.exclude {
		if id == c.id {
			return nil
		}
	}
	if x := c.x.Load(); x != nil && x.credit.blocked() {
		return nil
	}
	var fs *fanSize
	for i := range r.sizes {
		if r.sizes[i].size == int(c.outSize) {
			fs = &r.sizes[i]
			break
		}
	}
	if fs == nil {
		if len(r.sizes) < cap(r.sizes) {
			r.sizes = r.sizes[:len(r.sizes)+1] // its buffers are reused
		} else {
			r.sizes = append(r.sizes, fanSize{})
		}
		fs = &r.sizes[len(r.sizes)-1]
		fs.size, fs.ok, fs.b, fs.wsOK = int(c.outSize), true, fs.b[:0], [2]bool{}
		for _, t := range r.tasks {
			f, err := t.shared.frame(t.op, int(c.outSize))
			if err != nil {
				fs.ok = false
				break
			}
			fs.b = append(fs.b, f...)
		}
	}
	if !fs.ok || c.used()+len(fs.b) > c.side.cfg.maxOutbound {
		return nil
	}
	return fs
}

// wire returns the run's frames at fs's size as c's WebSocket messages,
// building them once per size and kind for all the connections that
// share them; or nil: c is no such connection, or its layer must frame
// them itself.
func (r *fanRun) wire(c *conn, fs *fanSize) []byte {
	w, ok := c.wsLayer()
	if !ok || r.resize || !w.shares(fs.size) {
		return nil
	}
	i := 0
	if w.cfg.Binary {
		i = 1
	}
	if !fs.wsOK[i] {
		fs.wsOK[i] = true
		b := fs.ws[i][:0]
		for f := fs.b; len(f) > 0; f = f[fs.size:] {
			b = r.codec.AppendServerMessage(b, f[:fs.size], w.cfg.Binary)
			c.loop.wsFramed++
		}
		fs.ws[i] = b
	}
	return fs.ws[i]
}
