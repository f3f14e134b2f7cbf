package codec

// This file reads and builds the envelopes of call frames (docs/PROTOCOL.md
// §5): a request -3{"id":N,"op":N,"data":{…}}, a reply -4{"id":N,"data":{…}}
// and a reply failure -5{"id":N,"reason":…,"message":…}. DecodeFrame is the
// one reader of inbound frames, call frames included: requests and replies
// are read in one pass by hand (fastCall), whatever their key order and
// white space; reply failures and the envelopes fastCall leaves aside the
// general way (Decode, then go-json), and the two give the same answers
// (FuzzDecodeFrame holds them to it).

import (
	"math"
	"strconv"

	json "github.com/goccy/go-json"
)

// Call is the envelope of a call frame (docs/PROTOCOL.md §5) as [DecodeFrame]
// reads it: a request ([OpRequest]) sets ID, Op and Data; a reply
// ([OpReply]) ID and Data; a reply failure ([OpReplyFailure]) ID, Reason
// and Message. The other fields are zero.
//
// Data may point into the frame given to DecodeFrame: it is borrowed, and
// valid only as long as that frame is. Copy it to keep it.
//
// It is not safe for concurrent use.
type Call struct {
	// ID is the caller's id of the call, from 0 to 2^64−1.
	ID uint64
	// Op is the opcode a request names: the call handler to run. It may be
	// negative (a request to no handler); it is 0 in replies.
	Op Opcode
	// Data is a request's argument or a reply's result: one valid JSON
	// object without surrounding white space, borrowed as the type's doc
	// says. It is nil in a reply failure.
	Data []byte
	// Reason and Message are a reply failure's (docs/PROTOCOL.md §2.1).
	// Either is empty when the frame leaves it out or gives null.
	Reason, Message string
}

// Messages of the [*MalformedError] for a call envelope that cannot be read.
// The request's is the one PROTOCOL.md §5.3 sends back in a -1 frame.
const (
	msgBadRequest      = "Malformed request frame"
	msgBadReply        = "Malformed reply frame"
	msgBadReplyFailure = "Malformed reply failure frame"
)

// DecodeFrame reads one whole inbound frame (opcode, JSON object, padding,
// as [Decode] takes it) and, when it is a call frame ([OpRequest],
// [OpReply] or [OpReplyFailure]), its envelope. It is the one call a reader
// makes per frame.
//
// On success op is the frame's opcode and obj its object, a sub-slice of
// frame, as Decode returns them; for a call frame obj is the whole envelope
// and call holds what it carries (see [Call]); for any other opcode call is
// zero. Both obj and call.Data are borrowed from frame and valid only as long
// as frame is.
//
// A frame Decode refuses returns Decode's [*MalformedError], its op and a
// nil obj. A well-formed call frame whose envelope cannot be read returns op
// and obj as on success, a zero call, and a *MalformedError that also
// matches [ErrMalformedCall] with errors.Is; its Message, for a request, is
// "Malformed request frame", the failure PROTOCOL.md §5.3 answers with. The
// envelope cannot be read when
//   - a request has no "id" that is an integer from 0 to 2^64−1, no "op"
//     that is a 32-bit integer, or no "data" that is an object;
//   - a reply has no such "id", or no "data" that is an object;
//   - a reply failure has no such "id", or a "reason" or "message" that is
//     neither a string nor null.
//
// Any other member is ignored. Other layouts (key order, white space,
// escapes, duplicate keys, where the last one counts) are read as go-json
// reads them, which matches key names case-insensitively as encoding/json
// does.
//
// A request or reply is read in one pass, the envelope by hand and its
// data through the strict validator, and without allocating, in any key
// order and with any white space: the form [AppendRequest] and
// [AppendReply] write, framed by [AppendValidated], as much as another
// peer's ({"id": 1, "op": 7, "data": {…}} from Python's json.dumps), with
// members it does not know. The rest (reply failures; an envelope with an
// escaped key, a key in capitals, a non-integer id, an unknown member whose
// value is an array, white space before the envelope) is read by Decode and
// go-json, with the same answer for the frames both accept; there Data may
// be a copy.
func DecodeFrame(frame []byte) (op Opcode, obj []byte, call Call, err error) {
	if len(frame) > 0 && frame[0]-'0' <= 9 {
		// An opcode that starts with a digit is not negative: no envelope.
		op, obj, err = Decode(frame)
		return op, obj, Call{}, err
	}
	if op, obj, call, ok := fastCall(frame); ok {
		return op, obj, call, nil
	}
	return decodeFrameGeneral(frame)
}

// decodeFrameGeneral is DecodeFrame without the one-pass reader: the
// reference fastCall must agree with.
func decodeFrameGeneral(frame []byte) (Opcode, []byte, Call, error) {
	op, obj, err := Decode(frame)
	if err != nil || op < OpReplyFailure || op > OpRequest {
		return op, obj, Call{}, err
	}
	call, err := decodeCall(op, obj)
	return op, obj, call, err
}

// decodeCall reads the envelope obj, a valid object, of a frame with the
// call opcode op, with go-json.
func decodeCall(op Opcode, obj []byte) (Call, error) {
	switch op {
	case OpRequest:
		var m struct {
			ID   *uint64         `json:"id"`
			Op   *int32          `json:"op"`
			Data json.RawMessage `json:"data"`
		}
		switch err := json.Unmarshal(obj, &m); {
		case err != nil:
			return Call{}, errBadCall(op, "", err)
		case m.ID == nil:
			return Call{}, errBadCall(op, `no "id"`, nil)
		case m.Op == nil:
			return Call{}, errBadCall(op, `no "op"`, nil)
		case !isObjectValue(m.Data):
			return Call{}, errBadCall(op, `"data" is not an object`, nil)
		}
		return Call{ID: *m.ID, Op: Opcode(*m.Op), Data: m.Data}, nil
	case OpReply:
		var m struct {
			ID   *uint64         `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		switch err := json.Unmarshal(obj, &m); {
		case err != nil:
			return Call{}, errBadCall(op, "", err)
		case m.ID == nil:
			return Call{}, errBadCall(op, `no "id"`, nil)
		case !isObjectValue(m.Data):
			return Call{}, errBadCall(op, `"data" is not an object`, nil)
		}
		return Call{ID: *m.ID, Data: m.Data}, nil
	default: // OpReplyFailure
		var m struct {
			ID      *uint64 `json:"id"`
			Reason  string  `json:"reason"`
			Message string  `json:"message"`
		}
		switch err := json.Unmarshal(obj, &m); {
		case err != nil:
			return Call{}, errBadCall(op, "", err)
		case m.ID == nil:
			return Call{}, errBadCall(op, `no "id"`, nil)
		}
		return Call{ID: *m.ID, Reason: m.Reason, Message: m.Message}, nil
	}
}

// isObjectValue reports whether v, a JSON value go-json took from a valid
// object, is an object.
func isObjectValue(v []byte) bool { return len(v) > 0 && v[0] == '{' }

// callError is the cause of a malformed envelope: what is missing, or
// go-json's error. It matches ErrMalformedCall.
type callError struct {
	detail string
	err    error
}

func (e *callError) Error() string {
	if e.err == nil {
		return e.detail
	}
	return e.err.Error()
}

func (e *callError) Is(target error) bool { return target == ErrMalformedCall }

func (e *callError) Unwrap() error { return e.err }

func errBadCall(op Opcode, detail string, err error) error {
	msg := msgBadRequest
	switch op {
	case OpReply:
		msg = msgBadReply
	case OpReplyFailure:
		msg = msgBadReplyFailure
	}
	return &MalformedError{Op: op, Message: msg, Err: &callError{detail: detail, err: err}}
}

// fastCall reads a request or reply frame in one pass: "-3" or "-4", then
// the envelope, then padding. The envelope may come in any key order, with
// any white space and with members it does not know (skipped, their values
// validated), as other peers write it: {"id": 1, "op": 7, "data": {…}}
// from Python's json.dumps as much as simplerpc's own form. The envelope is
// read by hand and validated as it goes, so that the frame is scanned once.
// It reports false, for decodeFrameGeneral to answer, for a reply failure
// and for anything it leaves to go-json: a missing or malformed member (the
// error), a key with an escape or a byte >= 0x80, or one that matches
// "id", "op" or "data" only case-insensitively, an id or op that is not a
// plain integer in range, an unknown member whose value is an array, a
// malformed frame. For every frame fastCall takes, decodeFrameGeneral gives
// the same answer (a repeated member: the last one counts). It never
// allocates.
func fastCall(frame []byte) (op Opcode, obj []byte, c Call, ok bool) {
	if len(frame) < 3 || frame[0] != '-' || frame[2] != '{' {
		return 0, nil, Call{}, false
	}
	switch frame[1] {
	case '3':
		op = OpRequest
	case '4':
		op = OpReply
	default:
		return 0, nil, Call{}, false
	}
	b := frame[2:]
	hasID, hasOp := false, op != OpRequest
	i := skipSpace(b, 1)
	for {
		// A member: its key, then its value.
		if i >= len(b) || b[i] != '"' {
			return 0, nil, Call{}, false
		}
		j, good := skipString(b, i+1)
		if !good {
			return 0, nil, Call{}, false
		}
		key := b[i+1 : j-1]
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return 0, nil, Call{}, false
		}
		if i = skipSpace(b, i+1); i >= len(b) {
			return 0, nil, Call{}, false
		}
		switch {
		case string(key) == "id":
			c.ID, i, good = parseJSONUint(b, i)
			hasID = true
		case string(key) == "op" && op == OpRequest:
			c.Op, i, good = parseJSONInt32(b, i)
			hasOp = true
		case string(key) == "data":
			var n int
			if n, good = validObjectAt(b[i:], 1); good && b[i] == '{' {
				c.Data = b[i : i+n]
				i += n
			} else {
				good = false
			}
		case foldsToMember(key):
			good = false
		default:
			i, good = skipValue(b, i)
		}
		if !good {
			return 0, nil, Call{}, false
		}
		// A number ends at a byte that is not its own: one that must be
		// ',' or '}' here (a '.' or an 'e' after an id makes it no integer).
		if i = skipSpace(b, i); i >= len(b) {
			return 0, nil, Call{}, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return 0, nil, Call{}, false
		}
		i = skipSpace(b, i+1)
	}
	if !hasID || !hasOp || c.Data == nil || !isPadding(b[i+1:]) {
		return 0, nil, Call{}, false
	}
	return op, b[:i+1], c, true
}

// foldsToMember reports whether key, the raw text of an envelope's key,
// might be read by go-json as "id", "op" or "data" though it is not that
// exact text: it has an escape or a byte >= 0x80, or it matches one of
// them case-insensitively. fastCall leaves those to go-json. ("op" is
// there for a reply, whose envelope go-json reads without it.)
func foldsToMember(key []byte) bool {
	for _, c := range key {
		if c == '\\' || c >= 0x80 {
			return true
		}
	}
	switch len(key) {
	case 2:
		return key[0]|0x20 == 'i' && key[1]|0x20 == 'd' || key[0]|0x20 == 'o' && key[1]|0x20 == 'p'
	case 4:
		return key[0]|0x20 == 'd' && key[1]|0x20 == 'a' && key[2]|0x20 == 't' && key[3]|0x20 == 'a'
	}
	return false
}

// skipValue returns the index after the value that starts at b[i] (a
// string, a number, a literal or an object, nested in an envelope), and
// false if it is not valid, or an array, left to go-json.
func skipValue(b []byte, i int) (int, bool) {
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i+1)
	case c == '{':
		n, ok := validObjectAt(b[i:], 1)
		return i + n, ok
	case c == '-' || c >= '0' && c <= '9':
		return skipNumber(b, i)
	case c == 't':
		return i + 4, hasWord(b, i, "true")
	case c == 'f':
		return i + 5, hasWord(b, i, "false")
	case c == 'n':
		return i + 4, hasWord(b, i, "null")
	}
	return i, false
}

// parseJSONUint reads the JSON unsigned integer at b[i:], returning it and
// the index after it. ok is false without a digit, for a leading zero
// before another digit (not JSON) and on overflow.
func parseJSONUint(b []byte, i int) (v uint64, next int, ok bool) {
	start := i
	if i+1 < len(b) && b[i] == '0' && b[i+1] >= '0' && b[i+1] <= '9' {
		return 0, i, false
	}
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, i, false
		}
		v = v*10 + d
	}
	return v, i, i > start
}

// parseJSONInt32 reads the JSON integer at b[i:], which must fit in an
// int32, as parseJSONUint does with an optional '-'.
func parseJSONInt32(b []byte, i int) (Opcode, int, bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	v, next, ok := parseJSONUint(b, i)
	switch {
	case !ok:
		return 0, next, false
	case neg && v <= -math.MinInt32:
		return Opcode(-int64(v)), next, true
	case !neg && v <= math.MaxInt32:
		return Opcode(v), next, true
	}
	return 0, next, false
}

// AppendRequest appends the object of a request frame (docs/PROTOCOL.md
// §5.1), {"id":ID,"op":OP,"data":DATA}, to dst and returns the extended
// slice. data must be one valid JSON object without surrounding white
// space, as [Marshal] and [Object] return it; it is not validated (an
// invalid one makes an invalid envelope) and it is copied, the caller keeps
// it. Give the result to [AppendValidated] with [OpRequest] to make the
// frame, which [DecodeFrame] then reads in one pass. It allocates only when
// dst lacks room.
func AppendRequest(dst []byte, id uint64, op Opcode, data []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"op":`...)
	dst = strconv.AppendInt(dst, int64(op), 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// AppendReply appends the object of a reply frame (docs/PROTOCOL.md §5.1),
// {"id":ID,"data":DATA}, to dst and returns the extended slice, under the
// same terms as [AppendRequest]: data must be a valid JSON object as
// [Marshal] and [Object] return it ({} when there is nothing to return);
// frame the result with [AppendValidated] and [OpReply]. A reply failure is
// built by [AppendFailureOp].
func AppendReply(dst []byte, id uint64, data []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}
