package engine

import "github.com/simplerpc/simplerpc/handler"

// PendingCalls returns the number of calls waiting for a reply on c: a
// server's or a client's connection (as a callback, [Server.Conn] or
// [Client.Conn] returns it). It returns -1 for any other handler.Conn.
func PendingCalls(c handler.Conn) int {
	if c, ok := c.(*conn); ok {
		return c.pendingCalls()
	}
	return -1
}

// ClientPendingCalls is PendingCalls for the client's current connection,
// 0 when it has none.
func ClientPendingCalls(cl *Client) int {
	if cur := cl.current(); cur != nil {
		return cur.pendingCalls()
	}
	return 0
}

// CallRoom returns, for the client's current connection, the frames
// waiting on its loop for outbound credit and the bytes used of the credit
// (sends queued, frames built, gnet's buffer). It asks the loop, where both
// live.
func CallRoom(cl *Client) (waiting int, used int64) {
	cl.mu.Lock()
	c, sized := cl.cur, cl.sized // see HeldFrames
	cl.mu.Unlock()
	if !sized || c == nil || c.loop == nil {
		return 0, 0
	}
	x := c.x.Load()
	if x == nil {
		return 0, 0
	}
	type room struct {
		n    int
		used int64
	}
	ch := make(chan room, 1)
	if c.loop.enqueue(task{kind: taskFunc, fn: func() {
		if c.closed.Load() {
			ch <- room{}
			return
		}
		ch <- room{len(x.credit.list), int64(c.used())}
	}}, nil) != nil {
		return 0, 0
	}
	r := <-ch
	return r.n, r.used
}

// RecheckArmed reports whether the loop of the client's current
// connection has its recheck timer armed: it should only while some
// connection waits on outbound credit. It asks the loop.
func RecheckArmed(cl *Client) bool {
	cl.mu.Lock()
	c, sized := cl.cur, cl.sized // see HeldFrames
	cl.mu.Unlock()
	if !sized || c == nil || c.loop == nil {
		return false
	}
	ch := make(chan bool, 1)
	if c.loop.enqueue(task{kind: taskFunc, fn: func() { ch <- c.loop.recheckArmed }}, nil) != nil {
		return false
	}
	return <-ch
}

// HeldFrames returns the frames the client holds and has not written yet:
// those it holds until its connection is ready, and those waiting on the
// loop for outbound credit.
func HeldFrames(cl *Client) int {
	cl.mu.Lock()
	// A connection is only looked at once ready: its loop was set in
	// OnOpen, before the ready one took cl.mu to say so.
	n, c, sized := len(cl.held), cl.cur, cl.sized
	cl.mu.Unlock()
	if sized && c != nil && c.loop != nil {
		if x := c.x.Load(); x != nil {
			ch := make(chan int, 1)
			if c.loop.enqueue(task{kind: taskFunc, fn: func() { ch <- len(x.credit.list) }}, nil) == nil {
				n += <-ch
			}
		}
	}
	return n
}

// LayerBuffers returns the capacity of the buffers a server connection with
// a layer (TLS, WebSocket) holds for itself, asking its loop: 0 when it
// holds none, as an idle one should. It returns -1 for a connection
// without a layer.
func LayerBuffers(c handler.Conn) int {
	cc, ok := c.(*conn)
	if !ok || cc.layered() == nil {
		return -1
	}
	n := make(chan int, 1)
	if cc.loop.enqueue(task{kind: taskFunc, fn: func() { n <- cap(cc.layered().plain) }}, nil) != nil {
		return -1
	}
	return <-n
}

// HeldInPeak returns the most unread input the server's paused
// connections held together on one loop, asking each loop.
func HeldInPeak(s *Server) int {
	peak := 0
	for _, l := range s.side.eachLoop() {
		n := make(chan int, 1)
		if l.enqueue(task{kind: taskFunc, fn: func() { n <- l.heldPeak }}, nil) == nil {
			peak = max(peak, <-n)
		}
	}
	return peak
}

// RawValidations returns how many objects SendRaw has validated for the
// server's connections (see handed): an echoed object the loop is
// dispatching is not counted.
func RawValidations(s *Server) uint64 {
	var n uint64
	for _, l := range s.side.eachLoop() {
		n += l.handed.checks.Load()
	}
	return n
}

// ClientRawValidations is RawValidations for the loop of a client's
// current connection.
func ClientRawValidations(cl *Client) uint64 {
	if c := cl.current(); c != nil && c.loop != nil {
		return c.loop.handed.checks.Load()
	}
	return 0
}
