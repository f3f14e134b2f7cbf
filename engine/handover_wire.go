// This file holds the wire of a handover between two servers over a Unix
// stream socket: batches of connection states, each with its sockets'
// descriptors (SCM_RIGHTS) on its first bytes, and the successor's
// acknowledgements.

package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// maxHandBatch is how many descriptors one batch carries: the kernel's
// SCM_MAX_FD (253), the most one sendmsg may pass.
const maxHandBatch = 253

// maxHandBytes bounds a batch's encoded size on the receiving side: 253
// connections with their unread bytes and application states.
const maxHandBytes = 256 << 20

// errHandWire is what a malformed handover stream fails with.
var errHandWire = errors.New("engine: handover: malformed stream")

// handedConn is the state of one connection handed over, as the
// successor needs it; its socket travels beside it (fd, not encoded).
type handedConn struct {
	ID       uint64   `json:"id"`
	In       int      `json:"in"`                 // the inbound frame size
	Out      int      `json:"out"`                // the outbound frame size
	Waiting  bool     `json:"waiting,omitempty"`  // not authenticated yet (WithAuth)
	Identity string   `json:"identity,omitempty"` // the authenticator's
	Groups   []string `json:"groups,omitempty"`
	Calls    uint64   `json:"calls,omitempty"`  // the last id of a call the server made on it
	Unread   []byte   `json:"unread,omitempty"` // read from the socket, not yet handled
	App      []byte   `json:"app,omitempty"`    // the application's state (WithHandover)

	fd int
}

// handBatch is one message of the predecessor: up to maxHandBatch
// connections, and the net id its counter had reached. The last batch
// has End set and no connection.
type handBatch struct {
	Next  uint64       `json:"next"`
	End   bool         `json:"end,omitempty"`
	Conns []handedConn `json:"conns,omitempty"`
	Stats *Stats       `json:"stats,omitempty"` // End only: the predecessor's counters, for the successor's to go on from
}

// writeBatch sends b with the descriptors of its connections: a length, the
// JSON, and SCM_RIGHTS on the first bytes.
func writeBatch(uc *net.UnixConn, b *handBatch) error {
	js, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("engine: handover: encode: %w", err)
	}
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(js)), uint32(len(js)))
	msg = append(msg, js...)
	var oob []byte
	if len(b.Conns) > 0 {
		fds := make([]int, len(b.Conns))
		for i := range b.Conns {
			fds[i] = b.Conns[i].fd
		}
		oob = unixRights(fds)
	}
	n, _, err := uc.WriteMsgUnix(msg, oob, nil)
	if err == nil && n < len(msg) {
		_, err = uc.Write(msg[n:]) // a stream: the rest follows, the descriptors went with the first bytes
	}
	if err != nil {
		return fmt.Errorf("engine: handover: send: %w", err)
	}
	return nil
}

// handReader reads the predecessor's batches, collecting the descriptors
// that arrive with their bytes.
type handReader struct {
	uc  *net.UnixConn
	buf []byte
	fds []int // received, not yet given to a batch
}

// next returns the next batch, its connections' descriptors in place.
func (r *handReader) next() (*handBatch, error) {
	oob := make([]byte, rightsSpace(maxHandBatch))
	for {
		if len(r.buf) >= 4 {
			n := int(binary.BigEndian.Uint32(r.buf))
			if n > maxHandBytes {
				return nil, fmt.Errorf("%w: a batch of %d bytes", errHandWire, n)
			}
			if len(r.buf) >= 4+n {
				return r.decode(n)
			}
		}
		if cap(r.buf)-len(r.buf) < 64<<10 {
			r.buf = append(r.buf, make([]byte, 64<<10)...)[:len(r.buf)]
		}
		n, oobn, flags, _, err := r.uc.ReadMsgUnix(r.buf[len(r.buf):cap(r.buf)], oob)
		if oobn > 0 {
			if perr := r.takeRights(oob[:oobn]); perr != nil && err == nil {
				err = perr
			}
		}
		if err == nil && truncated(flags) {
			err = fmt.Errorf("%w: descriptors truncated", errHandWire)
		}
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) && len(r.buf) > 0 {
				err = fmt.Errorf("%w: %w", errHandWire, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, io.EOF
		}
	}
}

// decode takes the batch of n bytes at the front of the buffer.
func (r *handReader) decode(n int) (*handBatch, error) {
	var b handBatch
	if err := json.Unmarshal(r.buf[4:4+n], &b); err != nil {
		return nil, fmt.Errorf("%w: %w", errHandWire, err)
	}
	r.buf = r.buf[:copy(r.buf, r.buf[4+n:])]
	if len(b.Conns) > len(r.fds) {
		return nil, fmt.Errorf("%w: %d connections, %d descriptors", errHandWire, len(b.Conns), len(r.fds))
	}
	for i := range b.Conns {
		b.Conns[i].fd = r.fds[i]
	}
	r.fds = r.fds[len(b.Conns):]
	return &b, nil
}

// takeRights adds the descriptors of a control message to r.fds.
func (r *handReader) takeRights(oob []byte) error {
	fds, err := parseRights(oob)
	r.fds = append(r.fds, fds...)
	if err != nil {
		return fmt.Errorf("%w: %w", errHandWire, err)
	}
	return nil
}

// close closes the descriptors received and given to no batch.
func (r *handReader) close() {
	closeFDs(r.fds)
	r.fds = nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		closeFD(fd)
	}
}

// helloAck is the successor's first message: it is reading, so that the
// predecessor stops reading its connections only once they can be
// adopted at once.
const helloAck = 1<<32 - 1

// liveAck marks the successor's second acknowledgement of a batch: its
// connections are live (enrolled and read) there.
const liveAck = 1 << 31

// writeAck acknowledges a batch of n connections: the successor holds
// their sockets now.
func writeAck(uc *net.UnixConn, n int) error {
	_, err := uc.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
	return err
}

// readAck reads one acknowledgement.
func readAck(uc *net.UnixConn) (int, error) {
	var b [4]byte
	if _, err := io.ReadFull(uc, b[:]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint32(b[:])), nil
}
