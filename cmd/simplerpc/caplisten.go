// A listener that holds at most n accepted connections at once: the
// metrics server's connection cap.
package main

import (
	"net"
	"sync"
)

// cappedListener accepts a connection only while fewer than cap of its
// connections are open; past that, Accept waits for one to close, and
// new connections wait in the kernel's accept queue. It is safe for
// concurrent use by multiple goroutines.
type cappedListener struct {
	net.Listener
	slots chan struct{} // one token per open connection
	done  chan struct{} // closed by Close
	once  sync.Once
}

// newCappedListener wraps ln with a cap of n open connections.
func newCappedListener(ln net.Listener, n int) *cappedListener {
	return &cappedListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *cappedListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &cappedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and wakes an Accept waiting for a slot.
func (l *cappedListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// cappedConn gives its slot back once, on its first Close.
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close closes the connection and frees its slot.
func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
