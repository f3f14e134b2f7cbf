// Package handoverwire is the wire of a live handover between two server
// processes over a Unix stream socket (docs/PROTOCOL.md, "The handover
// wire"): the successor's hello, which carries the format's version,
// batches of connection states, each with its sockets' descriptors
// (SCM_RIGHTS) on its first bytes and the version again, and the
// successor's acknowledgements. Both processes check the version: a
// predecessor refuses a hello of another, a successor a batch of another.
//
// Its functions are safe for concurrent use on distinct sockets; a Reader
// is used by one goroutine.
package handoverwire

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// Version is the version of the format. It changes with any change a
// process of the previous version would misread.
const Version = 3

// MaxBatch is how many descriptors one batch carries: the kernel's
// SCM_MAX_FD (253), the most one sendmsg may pass.
const MaxBatch = 253

// MaxBytes bounds a batch's encoded size on the receiving side: 253
// connections with their unread bytes and application states.
const MaxBytes = 256 << 20

// ErrWire is what a malformed handover stream fails with.
var ErrWire = errors.New("engine: handover: malformed stream")

// Conn is the state of one connection handed over, as the
// successor needs it; its socket travels beside it (fd, not encoded).
type Conn struct {
	ID       uint64   `json:"id"`
	In       int      `json:"in"`                 // the inbound frame size
	Out      int      `json:"out"`                // the outbound frame size
	Waiting  bool     `json:"waiting,omitempty"`  // not authenticated yet (WithAuth)
	Identity string   `json:"identity,omitempty"` // the authenticator's
	Groups   []string `json:"groups,omitempty"`
	Calls    uint64   `json:"calls,omitempty"`  // the last id of a call the server made on it
	Unread   []byte   `json:"unread,omitempty"` // read from the socket, not yet handled
	App      []byte   `json:"app,omitempty"`    // the application's state (WithHandover)
	// WS is the state of a plain WebSocket (ws://) connection; nil for
	// plain TCP or Unix. Unread is then the protocol's bytes the messages
	// carried, not the socket's.
	WS *WS `json:"ws,omitempty"`

	// FD is the connection's socket: it travels beside the JSON, not in it.
	FD int `json:"-"`
}

// WS is the state of a WebSocket connection past its upgrade: what the
// successor's WebSocket layer needs to go on where the predecessor's
// stopped, the peer seeing nothing.
type WS struct {
	Path   string `json:"path"`             // the path it was upgraded at
	Binary bool   `json:"binary,omitempty"` // outbound messages are binary
	In     int    `json:"in"`               // the frame size of inbound messages in force
	Out    int    `json:"out"`              // the frame size of outbound frames in force
	Op     byte   `json:"op,omitempty"`     // the opcode of a fragmented message begun
	Msg    []byte `json:"msg,omitempty"`    // its payload so far
	Wire   []byte `json:"wire,omitempty"`   // the socket's bytes read, not yet a whole WebSocket frame
}

// Batch is one message of the predecessor: up to MaxBatch
// connections, and the net id its counter had reached. The last batch
// has End set and no connection.
type Batch struct {
	V     int    `json:"v"` // Version, set by WriteBatch
	Next  uint64 `json:"next"`
	End   bool   `json:"end,omitempty"`
	Conns []Conn `json:"conns,omitempty"`
	// Frames are runs of whole frames sent after connections of earlier
	// batches moved, each held once however many connections get it (a
	// send to all); To says which runs each connection gets.
	Frames [][]byte `json:"frames,omitempty"`
	To     Tos      `json:"to,omitempty"`
	// Stats is the predecessor's counters, on the End batch only, for the
	// successor's to go on from: opaque here, the engine's to encode.
	Stats json.RawMessage `json:"stats,omitempty"`
}

// To is what the connection with net id ID gets of its batch's Frames:
// the runs at these indices, in this order, each built at its frame size.
type To struct {
	ID     uint64
	Frames []int
}

// Tos is a batch's To entries. A send to all carried to thousands of
// connections gives each an entry, so they travel packed, not as JSON
// objects (which cost the successor more to read than the frames
// themselves): base64 of, per entry, the net id, the number of runs and
// the runs' indices, each an unsigned varint.
type Tos []To

// MarshalJSON packs ts.
func (ts Tos) MarshalJSON() ([]byte, error) {
	var b []byte
	for _, t := range ts {
		b = binary.AppendUvarint(b, t.ID)
		b = binary.AppendUvarint(b, uint64(len(t.Frames)))
		for _, i := range t.Frames {
			if i < 0 {
				return nil, fmt.Errorf("engine: handover: net id %d: run %d", t.ID, i)
			}
			b = binary.AppendUvarint(b, uint64(i))
		}
	}
	return json.Marshal(b)
}

// UnmarshalJSON unpacks what MarshalJSON packed. It checks the packing;
// parseBatch checks that every index is a run of the batch's, and wraps
// either's error with ErrWire.
func (ts *Tos) UnmarshalJSON(js []byte) error {
	var b []byte
	if err := json.Unmarshal(js, &b); err != nil {
		return err
	}
	var out Tos
	var idx []int // the entries' indices, one array for all
	next := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("a packed entry cut short or overlong")
		}
		b = b[n:]
		return v, nil
	}
	for len(b) > 0 {
		id, err := next()
		if err != nil {
			return err
		}
		n, err := next()
		if err != nil {
			return err
		}
		if n == 0 || n > uint64(len(b)) { // each index takes a byte at least
			return fmt.Errorf("net id %d gets %d runs", id, n)
		}
		start := len(idx)
		for range n {
			i, err := next()
			if err != nil {
				return err
			}
			if i > MaxBytes {
				return fmt.Errorf("net id %d gets run %d", id, i)
			}
			idx = append(idx, int(i))
		}
		out = append(out, To{ID: id, Frames: idx[start:len(idx):len(idx)]})
	}
	*ts = out
	return nil
}

// WriteBatch sends b with the descriptors of its connections: a length, the
// JSON, and SCM_RIGHTS on the first bytes.
func WriteBatch(uc *net.UnixConn, b *Batch) error {
	b.V = Version
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
			fds[i] = b.Conns[i].FD
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

// NewReader returns a reader of the batches that arrive on uc.
func NewReader(uc *net.UnixConn) *Reader { return &Reader{uc: uc} }

// Reader reads the predecessor's batches, collecting the descriptors
// that arrive with their bytes.
type Reader struct {
	uc  *net.UnixConn
	buf []byte
	fds []int // received, not yet given to a batch
}

// Next returns the next batch, its connections' descriptors in place.
func (r *Reader) Next() (*Batch, error) {
	oob := make([]byte, rightsSpace(MaxBatch))
	for {
		if len(r.buf) >= 4 {
			n := int(binary.BigEndian.Uint32(r.buf))
			if n > MaxBytes {
				return nil, fmt.Errorf("%w: a batch of %d bytes", ErrWire, n)
			}
			if len(r.buf) >= 4+n {
				return r.decode(n)
			}
		}
		if cap(r.buf)-len(r.buf) < 64<<10 {
			r.buf = append(r.buf, make([]byte, 64<<10)...)[:len(r.buf)]
		}
		n, oobn, flags, _, err := r.uc.ReadMsgUnix(r.buf[len(r.buf):cap(r.buf)], oob)
		n, oobn = max(n, 0), max(oobn, 0) // a read that waited and failed (a deadline) says -1
		if oobn > 0 {
			if perr := r.takeRights(oob[:oobn]); perr != nil && err == nil {
				err = perr
			}
		}
		if err == nil && truncated(flags) {
			err = fmt.Errorf("%w: descriptors truncated", ErrWire)
		}
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) && len(r.buf) > 0 {
				err = fmt.Errorf("%w: %w", ErrWire, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if n == 0 && oobn == 0 {
			return nil, io.EOF
		}
	}
}

// decode takes the batch of n bytes at the front of the buffer.
func (r *Reader) decode(n int) (*Batch, error) {
	b, err := parseBatch(r.buf[4 : 4+n])
	if err != nil {
		return nil, err
	}
	r.buf = r.buf[:copy(r.buf, r.buf[4+n:])]
	if len(b.Conns) > len(r.fds) {
		return nil, fmt.Errorf("%w: %d connections, %d descriptors", ErrWire, len(b.Conns), len(r.fds))
	}
	for i := range b.Conns {
		b.Conns[i].FD = r.fds[i]
	}
	r.fds = r.fds[len(b.Conns):]
	return b, nil
}

// parseBatch reads a batch's JSON, of this version.
func parseBatch(js []byte) (*Batch, error) {
	var b Batch
	if err := json.Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrWire, err)
	}
	if b.V != Version {
		return nil, fmt.Errorf("%w: a batch of version %d, this process reads version %d", ErrWire, b.V, Version)
	}
	for _, f := range b.Frames {
		if len(f) == 0 {
			return nil, fmt.Errorf("%w: an empty run of frames", ErrWire)
		}
	}
	for _, t := range b.To {
		if len(t.Frames) == 0 {
			return nil, fmt.Errorf("%w: net id %d gets no frame", ErrWire, t.ID)
		}
		for _, i := range t.Frames {
			if i < 0 || i >= len(b.Frames) {
				return nil, fmt.Errorf("%w: net id %d gets run %d of %d", ErrWire, t.ID, i, len(b.Frames))
			}
		}
	}
	return &b, nil
}

// takeRights adds the descriptors of a control message to r.fds.
func (r *Reader) takeRights(oob []byte) error {
	fds, err := parseRights(oob)
	r.fds = append(r.fds, fds...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWire, err)
	}
	return nil
}

// Close closes the descriptors received and given to no batch.
func (r *Reader) Close() {
	CloseFDs(r.fds)
	r.fds = nil
}

// CloseFDs closes descriptors received.
func CloseFDs(fds []int) {
	for _, fd := range fds {
		closeFD(fd)
	}
}

// Hello is the successor's first message: it is reading, so that the
// predecessor stops reading its connections only once they can be adopted
// at once. It is one acknowledgement word, the top 16 bits set and the low
// 16 the version: no count of connections can be mistaken for it.
const Hello uint32 = 0xffff<<16 | Version

// CheckHello checks the first word the successor sent: the hello of this
// version.
func CheckHello(n uint32) error {
	switch {
	case n == Hello:
		return nil
	case n>>16 == 0xffff:
		return fmt.Errorf("%w: the successor speaks version %d, this process version %d", ErrWire, n&0xffff, Version)
	}
	return fmt.Errorf("%w: %d before the hello", ErrWire, n)
}

// LiveAck marks the successor's second acknowledgement of a batch: its
// connections are live (enrolled and read) there.
const LiveAck uint32 = 1 << 31

// WriteAck writes one acknowledgement word: Hello, or a batch's count of
// connections (the successor holds their sockets now), with LiveAck once
// they are live there. The words are 32 bits on every platform.
func WriteAck(uc *net.UnixConn, n uint32) error {
	_, err := uc.Write(binary.BigEndian.AppendUint32(nil, n))
	return err
}

// ReadAck reads one acknowledgement.
func ReadAck(uc *net.UnixConn) (uint32, error) {
	var b [4]byte
	if _, err := io.ReadFull(uc, b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}
