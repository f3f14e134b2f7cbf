// Package codec implements the simplerpc wire format: fixed-size frames made
// of an ASCII opcode, one JSON object and ASCII-space padding (see
// docs/PROTOCOL.md §1).
//
// Encoding appends into a buffer the caller owns:
//
//	buf, err := codec.Append(buf[:0], 256, 1, map[string]any{"some_data": 123})
//	// len(buf) == 256
//
// Decoding borrows from its input:
//
//	op, obj, err := codec.Decode(frame) // obj is a sub-slice of frame
//	var v struct{ SomeData int `json:"some_data"` }
//	err = codec.Unmarshal(obj, &v)
//
// Decode is lenient where the original Python simplerpc is (spaces around the
// opcode, a leading '+') and strict on the JSON: exactly one object, then only
// whitespace. Every malformed frame yields a [*MalformedError], whose Reason
// is "MalformedPayload" and whose message is the original's where it had one.
//
// A reader decodes each inbound frame with one call, [DecodeFrame], which
// also reads the envelope of a call frame (docs/PROTOCOL.md §5) into a
// [Call]; a request or reply, in this package's form or another peer's (any
// key order, any white space), is read in one pass without allocating.
// [AppendRequest] and [AppendReply] build those envelopes for
// [AppendValidated] to frame:
//
//	obj := codec.AppendRequest(buf[:0], id, op, data) // data: a valid object
//	frame, err := codec.AppendValidated(frame[:0], size, codec.OpRequest, obj)
//	op, obj, call, err := codec.DecodeFrame(frame) // call.Data borrowed from frame
//
// An envelope that cannot be read is a [*MalformedError] that also matches
// [ErrMalformedCall].
//
// [Scanner] finds the end of the first frame of a stream whose frame size is
// not yet known (docs/PROTOCOL.md §3), never reading past a configured limit.
//
// The package has no state: every function is safe for concurrent use, and a
// [Scanner] is not.
package codec
