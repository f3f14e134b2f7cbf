package cluster

// This file holds what nodes put on the bus (docs/CLUSTER.md, "Messages"):
// a 12-byte header naming the kind of message and the node and epoch it
// comes from, then the fields of its kind, big-endian, then, for most
// kinds, a JSON object or a text running to the end of the message.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/simplerpc/simplerpc/codec"
)

// wireVersion 2: queries by the engine's kinds (count, members,
// identity, connections), as of the backend seam.
const wireVersion = 2

// kind is what a bus message carries.
type kind uint8

const (
	kindHello  kind = 1 + iota // presence: a node (re)joins, please announce yourselves
	kindBeat                   // presence: a heartbeat
	kindBye                    // presence: a node leaves
	kindProbe                  // directed: is this node number taken?
	kindSend                   // directed: a frame to one connection
	kindAll                    // broadcast: a frame to every connection
	kindGroup                  // broadcast: a frame to a group's members
	kindCall                   // directed: a call to one connection
	kindQuery                  // directed: a count or a lookup
	kindReply                  // reply: the outcome of a call
	kindAnswer                 // reply: the answer to a query or a probe
	kindClose                  // directed: close one connection
	kindEnd
)

var kindNames = [...]string{"?", "hello", "beat", "bye", "probe", "send", "all", "group", "call", "query", "reply", "answer", "close"}

func (k kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind " + strconv.Itoa(int(k))
}

// Queries.
const (
	queryLen      uint8 = 1 + iota // the node's open connections: count
	queryMembers                   // a group's members on the node: ids
	queryIdentity                  // the node's connections authenticated as an identity: ids
	queryConns                     // the node's open connections: ids
	queryEnd
)

// maxQueryName bounds the group or identity a query names.
const maxQueryName = 1<<16 - 1

// Outcomes of a call (kindReply) and of a query (kindAnswer). The ones
// after statusFailure carry an error of the callee's node, mapped back to
// the sentinel it matched there so that errors.Is works across nodes.
const (
	statusOK       uint8 = iota // the reply's object, or the answer
	statusFailure               // the remote handler's failure: reason, message
	statusUnknown               // engine.ErrUnknownConn
	statusClosed                // engine.ErrClosed
	statusDeadline              // context.DeadlineExceeded
	statusCanceled              // context.Canceled
	statusFull                  // engine.ErrOutboundFull
	statusTooLarge              // codec.ErrFrameTooLarge
	statusShutdown              // engine.ErrServerClosed
	statusBusy                  // ErrBusFull: too many relayed calls
	statusOther                 // anything else: its text
	statusEnd
)

const headerLen = 12

// Bounds of what a node accepts from the bus, beyond the layout: a
// message outside them is malformed, whoever sent it.
const (
	// maxAddr bounds the listen address of a hello or heartbeat.
	maxAddr = 512
	// maxConns bounds the connection count of a hello or heartbeat: more
	// than any one process can hold.
	maxConns = 1 << 32
)

var errMalformed = errors.New("malformed")

// malformed is errMalformed saying why.
func malformed(why string) error { return fmt.Errorf("%w: %s", errMalformed, why) }

var (
	errShort      = malformed("too short for its kind")
	errLong       = malformed("bytes after its last field")
	errProtocolOp = malformed("a protocol opcode (negative): frames of the protocol never cross the bus")
	errObject     = malformed("not exactly one JSON object")
	errTooLarge   = malformed("object larger than the largest frame")
	errBadID      = malformed("a net id no node gives out")
	errBadEpoch   = malformed("an epoch no node has")
	errBadAddr    = malformed("a listen address too long or not printable")
	errBadConns   = malformed("an implausible connection count")
)

// envelope is a decoded bus message. obj and text are borrowed from the
// message.
type envelope struct {
	kind    kind
	node    int
	epoch   uint64
	id      uint64 // send, call, close: the destination; all, group: except
	op      codec.Opcode
	timeout time.Duration // call
	group   string        // group; query: the group or identity
	query   uint8
	status  uint8
	reason  string // reply failure
	count   uint64 // beat, hello: open connections; answer: count, found
	addr    string // beat, hello
	obj     []byte // send, all, group, call, reply ok: a JSON object
	text    []byte // reply: failure message or error text; answer: member ids
}

// appendHeader starts a message.
func appendHeader(dst []byte, k kind, node int, epoch uint64) []byte {
	dst = append(dst, wireVersion, byte(k))
	dst = binary.BigEndian.AppendUint16(dst, uint16(node))
	return binary.BigEndian.AppendUint64(dst, epoch)
}

func appendPresence(dst []byte, k kind, node int, epoch uint64, conns uint64, addr string) []byte {
	dst = appendHeader(dst, k, node, epoch)
	dst = binary.BigEndian.AppendUint64(dst, conns)
	return append(dst, addr...)
}

// appendFrame builds send (id), all and group (except) messages.
func appendFrame(dst []byte, k kind, node int, epoch uint64, id uint64, op codec.Opcode, group string, obj []byte) []byte {
	dst = appendHeader(dst, k, node, epoch)
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, uint32(op))
	if k == kindGroup {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(group)))
		dst = append(dst, group...)
	}
	return append(dst, obj...)
}

// appendClose builds a close of net id id.
func appendClose(dst []byte, node int, epoch uint64, id uint64) []byte {
	dst = appendHeader(dst, kindClose, node, epoch)
	return binary.BigEndian.AppendUint64(dst, id)
}

func appendCall(dst []byte, node int, epoch uint64, id uint64, op codec.Opcode, timeout time.Duration, obj []byte) []byte {
	dst = appendHeader(dst, kindCall, node, epoch)
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, uint32(op))
	dst = binary.BigEndian.AppendUint64(dst, uint64(timeout.Microseconds()))
	return append(dst, obj...)
}

// appendQuery builds a query: name is the group of queryMembers, the
// identity of queryIdentity.
func appendQuery(dst []byte, node int, epoch uint64, q uint8, name string) []byte {
	dst = appendHeader(dst, kindQuery, node, epoch)
	dst = append(dst, q)
	return append(dst, name...)
}

// appendReply builds a call's outcome: obj for statusOK, reason and text
// for statusFailure, text for the others.
func appendReply(dst []byte, node int, epoch uint64, status uint8, obj []byte, reason, text string) []byte {
	dst = appendHeader(dst, kindReply, node, epoch)
	dst = append(dst, status)
	switch status {
	case statusOK:
		return append(dst, obj...)
	case statusFailure:
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(reason)))
		dst = append(dst, reason...)
	}
	return append(dst, text...)
}

// appendAnswer starts an answer; the caller appends its count (8 bytes),
// ids (8 bytes each) or error text.
func appendAnswer(dst []byte, node int, epoch uint64, status uint8) []byte {
	dst = appendHeader(dst, kindAnswer, node, epoch)
	return append(dst, status)
}

// decode reads a bus message. It never panics; it returns an error
// wrapping errMalformed, saying why, for anything that is not exactly a
// message of a known kind within the bounds a node accepts: a node number
// and epoch a node may have, net ids a node gives out, an application
// opcode (never the protocol's) and a valid JSON object no larger than
// the largest frame where one is carried.
func decode(b []byte) (e envelope, err error) {
	if len(b) < headerLen || b[0] != wireVersion || b[1] == 0 || kind(b[1]) >= kindEnd {
		return e, malformed("not a bus message of a known version and kind")
	}
	e.kind = kind(b[1])
	e.node = int(binary.BigEndian.Uint16(b[2:]))
	e.epoch = binary.BigEndian.Uint64(b[4:])
	if e.node == 0 || e.node > MaxNode {
		return e, malformed("a node number out of 1.." + strconv.Itoa(MaxNode))
	}
	if e.epoch == 0 || e.epoch > counterMask {
		return e, errBadEpoch
	}
	p := b[headerLen:]
	needObj := false
	switch e.kind {
	case kindHello, kindBeat:
		if len(p) < 8 {
			return e, errShort
		}
		e.count, p = binary.BigEndian.Uint64(p), p[8:]
		if e.count > maxConns {
			return e, errBadConns
		}
		if len(p) > maxAddr || !printable(p) {
			return e, errBadAddr
		}
		e.addr = string(p)
	case kindBye, kindProbe:
		if len(p) != 0 {
			return e, errLong
		}
	case kindClose:
		if len(p) != 8 {
			return e, malformed("a close without exactly its net id")
		}
		if e.id = binary.BigEndian.Uint64(p); !plausibleID(e.id) {
			return e, errBadID
		}
	case kindSend, kindAll, kindGroup:
		if len(p) < 12 {
			return e, errShort
		}
		e.id, e.op, p = binary.BigEndian.Uint64(p), codec.Opcode(binary.BigEndian.Uint32(p[8:])), p[12:]
		// A send names its connection; all and group name one to skip, or 0.
		if (e.kind == kindSend || e.id != 0) && !plausibleID(e.id) {
			return e, errBadID
		}
		if e.kind == kindGroup {
			if len(p) < 2 {
				return e, errShort
			}
			n := int(binary.BigEndian.Uint16(p))
			if n == 0 || len(p) < 2+n {
				return e, malformed("a group name empty or past the end")
			}
			e.group, p = string(p[2:2+n]), p[2+n:]
		}
		e.obj, needObj = p, true
	case kindCall:
		if len(p) < 20 {
			return e, errShort
		}
		e.id, e.op = binary.BigEndian.Uint64(p), codec.Opcode(binary.BigEndian.Uint32(p[8:]))
		if !plausibleID(e.id) {
			return e, errBadID
		}
		us := binary.BigEndian.Uint64(p[12:])
		if us == 0 || us > uint64(365*24*time.Hour/time.Microsecond) {
			return e, malformed("a call's time left not within a year")
		}
		e.timeout, e.obj, needObj = time.Duration(us)*time.Microsecond, p[20:], true
	case kindQuery:
		if len(p) < 1 || p[0] == 0 || p[0] >= queryEnd {
			return e, malformed("an unknown query")
		}
		e.query, p = p[0], p[1:]
		switch e.query {
		case queryMembers, queryIdentity:
			if len(p) == 0 || len(p) > maxQueryName {
				return e, malformed("a query without its group or identity, or one too long")
			}
			e.group = string(p)
		default:
			if len(p) != 0 {
				return e, errLong
			}
		}
	case kindReply:
		if len(p) < 1 || p[0] >= statusEnd {
			return e, malformed("an unknown status")
		}
		e.status, p = p[0], p[1:]
		switch e.status {
		case statusOK:
			e.obj, needObj = p, true
		case statusFailure:
			if len(p) < 2 {
				return e, errShort
			}
			n := int(binary.BigEndian.Uint16(p))
			if n == 0 || len(p) < 2+n {
				return e, malformed("a failure's reason empty or past the end")
			}
			e.reason, e.text = string(p[2:2+n]), p[2+n:]
		default:
			e.text = p
		}
	case kindAnswer:
		if len(p) < 1 || p[0] >= statusEnd {
			return e, malformed("an unknown status")
		}
		e.status, e.text = p[0], p[1:]
	}
	switch e.kind {
	case kindSend, kindAll, kindGroup, kindCall:
		if e.op < 0 {
			return e, errProtocolOp
		}
	}
	if needObj {
		if len(e.obj) > codec.MaxMessageSize {
			return e, errTooLarge
		}
		obj, err := codec.Object(e.obj)
		if err != nil || len(obj) != len(e.obj) {
			return e, errObject
		}
	}
	return e, nil
}

// plausibleID reports whether id is one a node may have given out: a node
// number of 1 to MaxNode and a counter of at least 1.
func plausibleID(id uint64) bool { return NodeOf(id) != 0 && counterOf(id) != 0 }

// printable reports whether b is UTF-8 text without control characters.
func printable(b []byte) bool {
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 || r < 0x20 || r == 0x7f {
			return false
		}
		b = b[n:]
	}
	return true
}
