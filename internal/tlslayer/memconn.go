// This file holds the net.Conn under a connection's tls.Conn: bytes lent
// by the loop in, bytes collected for the loop out, and the TLS record
// boundaries it keeps reads within.

package tlslayer

import (
	"io"
	"net"
	"sync"
	"time"
)

// recordHeaderLen is the length of a TLS record's header: type, version,
// length (RFC 8446 §5.1).
const recordHeaderLen = 5

// errNoData is what a memConn's read returns after the handshake when the
// loop has handed it nothing more. crypto/tls passes a temporary net.Error
// up without keeping it (readRecordOrCCS), so tls.Conn.Read can be called
// again once more bytes arrive.
var errNoData net.Error = noData{}

type noData struct{}

func (noData) Error() string   { return "tlslayer: no TLS input yet" }
func (noData) Timeout() bool   { return true }
func (noData) Temporary() bool { return true }

// memConn is the net.Conn under a connection's tls.Conn: its reads take the
// wire bytes the loop handed over, its writes collect wire bytes for the
// loop to write to the socket. During the handshake a read waits until the
// loop hands bytes over; after it, a read with nothing to give returns
// errNoData. It is safe for concurrent use: the handshake goroutine and the
// loop share it.
//
// The handshake's writes wake the loop only when the handshake waits for
// the peer or returns, not as they are written: a failing handshake writes
// its alert and then returns, and the loop must see the alert and the
// error together, or the peer, closing on the alert, may be heard first and
// the reason lost.
type memConn struct {
	wake          func()        // makes the loop call input; from any goroutine
	notify        chan struct{} // a token when pend grew or the conn closed
	local, remote net.Addr

	mu        sync.Mutex // guards the fields below
	pend      []byte     // handed over during the handshake, owned; read from poff
	poff      int
	hdr       [recordHeaderLen]byte // the header of the record being given to crypto/tls
	hn        int                   // bytes of hdr seen
	body      int                   // bytes of the record's body not given yet
	in        []byte                // lent by input after the handshake
	out       []byte                // written by crypto/tls, for the loop to write
	blocking  bool                  // the handshake runs: reads wait for bytes
	closed    bool
	eof       bool // the peer has closed: reads return io.EOF
	woken     bool // a wake is pending: input has not run since
	throttled bool // input held bytes back: wake the loop once pend is read
	hsDone    bool // the handshake returned, with hsErr
	hsErr     error
}

func (m *memConn) Read(p []byte) (int, error) {
	m.mu.Lock()
	for {
		if m.poff < len(m.pend) {
			b := m.pend[m.poff:]
			n := copy(p, b[:m.span(b)])
			m.advance(b[:n])
			m.poff += n
			wake := false
			if m.poff == len(m.pend) {
				m.pend, m.poff = m.pend[:0], 0
				if m.throttled {
					m.throttled = false
					wake = m.wakeLocked()
				}
			}
			m.mu.Unlock()
			if wake {
				m.wake()
			}
			return n, nil
		}
		if len(m.in) > 0 {
			n := copy(p, m.in[:m.span(m.in)])
			m.advance(m.in[:n])
			m.in = m.in[n:]
			m.mu.Unlock()
			return n, nil
		}
		switch {
		case m.closed:
			m.mu.Unlock()
			return 0, net.ErrClosed
		case m.eof:
			m.mu.Unlock()
			return 0, io.EOF
		case !m.blocking:
			m.mu.Unlock()
			return 0, errNoData
		}
		// The handshake waits for the peer: what it wrote must go out now.
		wake := len(m.out) > 0 && m.wakeLocked()
		m.mu.Unlock()
		if wake {
			m.wake()
		}
		<-m.notify
		m.mu.Lock()
	}
}

func (m *memConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, net.ErrClosed
	}
	m.out = append(m.out, p...)
	m.mu.Unlock()
	return len(p), nil
}

// span returns how many bytes of b a read may give: up to the end of the
// record they are part of. crypto/tls then holds at most one record it
// has not decrypted, so once a tls.Conn.Read that did not fill its buffer
// has used up the bytes lent, nothing is left to decrypt: input need not
// make the extra call that would find no data, which costs crypto/tls an
// allocation.
func (m *memConn) span(b []byte) int {
	if m.hn == recordHeaderLen {
		return min(len(b), m.body)
	}
	need := recordHeaderLen - m.hn
	if len(b) < need {
		return len(b)
	}
	var h [recordHeaderLen]byte
	copy(h[copy(h[:], m.hdr[:m.hn]):], b[:need])
	return min(len(b), need+(int(h[3])<<8|int(h[4])))
}

// advance moves the record parser over b, bytes given to crypto/tls.
func (m *memConn) advance(b []byte) {
	for len(b) > 0 {
		if m.hn < recordHeaderLen {
			k := copy(m.hdr[m.hn:], b)
			m.hn += k
			b = b[k:]
			if m.hn == recordHeaderLen {
				m.body = int(m.hdr[3])<<8 | int(m.hdr[4])
			}
		} else {
			k := min(m.body, len(b))
			m.body -= k
			b = b[k:]
		}
		if m.hn == recordHeaderLen && m.body == 0 {
			m.hn = 0
		}
	}
}

// buffered returns the bytes handed over or lent and not read yet.
func (m *memConn) buffered() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pend) - m.poff + len(m.in)
}

// wakeLocked reports whether the caller must wake the loop: once until input
// runs. m.mu is held.
func (m *memConn) wakeLocked() bool {
	if m.woken {
		return false
	}
	m.woken = true
	return true
}

// finish hands the handshake's result to the loop.
func (m *memConn) finish(err error) {
	m.mu.Lock()
	m.hsDone, m.hsErr, m.blocking = true, err, false
	m.woken = true
	m.mu.Unlock()
	m.wake()
}

// Close ends the reads; crypto/tls calls it when the handshake's context
// ends.
func (m *memConn) Close() error {
	m.close()
	return nil
}

func (m *memConn) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.signal()
}

func (m *memConn) signal() {
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

func (m *memConn) LocalAddr() net.Addr              { return m.local }
func (m *memConn) RemoteAddr() net.Addr             { return m.remote }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }
