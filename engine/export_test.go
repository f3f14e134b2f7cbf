package engine

import "github.com/simplerpc/simplerpc/handler"

// PendingCalls returns the number of calls waiting for a reply on c: a
// server connection (as [Server.Conn] or a callback returns it) or a
// [*Client]. It returns -1 for any other handler.Conn, and 0 for a client
// with no connection.
func PendingCalls(c handler.Conn) int {
	switch c := c.(type) {
	case *conn:
		return c.pendingCalls()
	case *Client:
		if cur := c.current(); cur != nil {
			return cur.pendingCalls()
		}
		return 0
	}
	return -1
}

// CallRoom returns, for the client's current connection, the calls waiting
// for room in the calls' outbound budget and the bytes charged to it.
func CallRoom(cl *Client) (waiters int, charged int64) {
	c := cl.current()
	if c == nil {
		return 0, 0
	}
	x := c.x.Load()
	if x == nil {
		return 0, 0
	}
	return int(x.roomWaiters.Load()), x.callBytes.Load()
}

// HeldFrames returns the frames the client holds until its connection is
// ready, or until the loop has written the ones held before.
func HeldFrames(cl *Client) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.held)
}
