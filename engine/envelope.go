package engine

import (
	"bytes"
	"encoding/json"
	"math"

	"github.com/simplerpc/simplerpc/codec"
)

// Call envelopes (docs/PROTOCOL.md §5): a request {"id":N,"op":N,"data":{…}},
// a reply {"id":N,"data":{…}}, a reply failure {"id":N,"reason":…,
// "message":…}.

// appendEnvelope appends the object of a request ({"id":…,"op":…,"data":…})
// or, with op < 0, of a reply ({"id":…,"data":…}) around a valid data
// object to dst.
func appendEnvelope(dst []byte, id uint64, op codec.Opcode, data []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendUint(dst, id)
	if op >= 0 {
		dst = append(dst, `,"op":`...)
		dst = appendUint(dst, uint64(op))
	}
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// envelopeStack is the size of the stack buffers envelopes are built in;
// larger ones go to the heap.
const envelopeStack = 512

// request is a decoded request envelope. data is borrowed from the frame.
type request struct {
	id   uint64
	op   codec.Opcode
	data []byte
}

// parseRequest reads a request object that codec.Decode has validated.
// It reports false for a request without an id, an op in int32 or a data
// object.
func parseRequest(obj []byte) (request, bool) {
	if r, ok := fastEnvelope(obj, true); ok {
		return r, true
	}
	var m struct {
		ID   *uint64         `json:"id"`
		Op   *int32          `json:"op"`
		Data json.RawMessage `json:"data"`
	}
	if codec.Unmarshal(obj, &m) != nil || m.ID == nil || m.Op == nil || len(m.Data) == 0 || m.Data[0] != '{' {
		return request{}, false
	}
	return request{id: *m.ID, op: codec.Opcode(*m.Op), data: m.Data}, true
}

// reply is a decoded reply or reply-failure envelope. data is borrowed
// from the frame.
type reply struct {
	id              uint64
	data            []byte
	reason, message string
}

// parseReply reads a reply (failure false) or reply failure (true) object
// that codec.Decode has validated.
func parseReply(obj []byte, failure bool) (reply, bool) {
	if !failure {
		if r, ok := fastEnvelope(obj, false); ok {
			return reply{id: r.id, data: r.data}, true
		}
	}
	var m struct {
		ID      uint64          `json:"id"`
		Data    json.RawMessage `json:"data"`
		Reason  string          `json:"reason"`
		Message string          `json:"message"`
	}
	if codec.Unmarshal(obj, &m) != nil {
		return reply{}, false
	}
	return reply{id: m.ID, data: m.Data, reason: m.Reason, message: m.Message}, true
}

// fastEnvelope reads the form simplerpc writes, {"id":N,"op":N,"data":{…}}
// (no "op" when withOp is false), from a validated object, without
// go-json and without a copy. Any other form (keys in another order, white
// space, extra keys, numbers out of range) reports false and is left to
// go-json, which gives the general answer.
func fastEnvelope(obj []byte, withOp bool) (r request, ok bool) {
	const idKey, opKey, dataKey = `{"id":`, `,"op":`, `,"data":`
	if !bytes.HasPrefix(obj, []byte(idKey)) {
		return r, false
	}
	i := len(idKey)
	if r.id, i, ok = parseDigits(obj, i); !ok {
		return r, false
	}
	if withOp {
		if !bytes.HasPrefix(obj[i:], []byte(opKey)) {
			return r, false
		}
		var op uint64
		if op, i, ok = parseDigits(obj, i+len(opKey)); !ok || op > math.MaxInt32 {
			return r, false
		}
		r.op = codec.Opcode(op)
	}
	if !bytes.HasPrefix(obj[i:], []byte(dataKey)) {
		return r, false
	}
	i += len(dataKey)
	// data must be an object that closes just before the envelope does.
	if i >= len(obj) || obj[i] != '{' {
		return r, false
	}
	end := skipObject(obj, i)
	if end != len(obj)-1 || obj[end] != '}' {
		return r, false
	}
	r.data = obj[i:end]
	return r, true
}

// fastCall reads a call frame in the form simplerpc writes: "-3" or "-4",
// then {"id":N,"op":N,"data":{…}} (no "op" in a reply), then spaces. The
// envelope is read by hand and only the data object goes through the strict
// validator, so that the frame is scanned once rather than validated whole
// and then walked again for the data's end. Anything else (a reply failure,
// another peer's key order or white space, leading zeros, a malformed
// frame) reports false and is left to codec.Decode and parseRequest or
// parseReply, which give the same answer for every frame this accepts
// (FuzzFastCall holds them to it). obj is the envelope object, r.data the
// data object, both borrowed from frame.
func fastCall(frame []byte) (op codec.Opcode, obj []byte, r request, ok bool) {
	if len(frame) < 3 || frame[0] != '-' || frame[2] != '{' {
		return 0, nil, r, false
	}
	switch frame[1] {
	case '3':
		op = codec.OpRequest
	case '4':
		op = codec.OpReply
	default:
		return 0, nil, r, false
	}
	const idKey, opKey, dataKey = `{"id":`, `,"op":`, `,"data":`
	b := frame[2:]
	if !bytes.HasPrefix(b, []byte(idKey)) {
		return 0, nil, r, false
	}
	i := len(idKey)
	if r.id, i, ok = parseJSONUint(b, i); !ok {
		return 0, nil, r, false
	}
	if op == codec.OpRequest {
		if !bytes.HasPrefix(b[i:], []byte(opKey)) {
			return 0, nil, r, false
		}
		var v uint64
		if v, i, ok = parseJSONUint(b, i+len(opKey)); !ok || v > math.MaxInt32 {
			return 0, nil, r, false
		}
		r.op = codec.Opcode(v)
	}
	if !bytes.HasPrefix(b[i:], []byte(dataKey)) {
		return 0, nil, r, false
	}
	i += len(dataKey)
	n, err := codec.ObjectPrefix(b[i:], 1)
	if err != nil {
		return 0, nil, r, false
	}
	end := i + n
	if end >= len(b) || b[end] != '}' {
		return 0, nil, r, false
	}
	for _, c := range b[end+1:] {
		if c != ' ' {
			return 0, nil, r, false
		}
	}
	r.data = b[i:end]
	return op, b[:end+1], r, true
}

// parseJSONUint is parseDigits on bytes not yet validated: it also refuses
// what JSON does not allow, a leading zero before another digit.
func parseJSONUint(b []byte, i int) (v uint64, next int, ok bool) {
	if i+1 < len(b) && b[i] == '0' && b[i+1] >= '0' && b[i+1] <= '9' {
		return 0, i, false
	}
	return parseDigits(b, i)
}

// parseDigits reads the unsigned decimal integer at b[i:], returning it and
// the index after it; ok is false without a digit or on overflow.
func parseDigits(b []byte, i int) (v uint64, next int, ok bool) {
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, i, false
		}
		v = v*10 + d
	}
	return v, i, i > start
}

// skipObject returns the index just after the object that starts at b[i]
// ('{'), or -1 if it does not close. b must be valid JSON, so that brackets
// and quotes need no more than counting.
func skipObject(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		case '"':
			// Jump to the closing quote: one not preceded by an odd number
			// of backslashes.
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return -1
				}
				i += 1 + j
				k := i - 1
				for b[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		}
		i++
	}
	return -1
}

func appendUint(b []byte, v uint64) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
