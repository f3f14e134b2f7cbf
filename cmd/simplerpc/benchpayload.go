// bench's own frames: built with their send time, and read back from
// their echoes in any well-formed form.
package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
)

// payload builds the frames bench sends: {"t":NANOS,"p":"xxx..."} for
// echoes and {"r":ROUND,"t":NANOS,"p":"xxx..."} for broadcasts, padded so
// that opcode and object take the target size. NANOS counts from the
// start of the run on the monotonic clock.
type payload struct {
	target int // opcode and object bytes
	pad    string
}

// minPayload is the smallest object bench can send: room for the fields
// and a 19-digit time.
const minPayload = len(`1{"r":1000000000,"t":1000000000000000000,"p":""}`)

// newPayload returns a builder of objects that fill target bytes.
func newPayload(target int) payload {
	return payload{target: target, pad: strings.Repeat("x", target)}
}

// build appends to b the object for opcode op with time t and, for
// round > 0, the round number.
func (p payload) build(b []byte, op codec.Opcode, round int64, t time.Duration) []byte {
	if round > 0 {
		b = append(b, `{"r":`...)
		b = strconv.AppendInt(b, round, 10)
		b = append(b, `,"t":`...)
	} else {
		b = append(b, `{"t":`...)
	}
	b = strconv.AppendInt(b, int64(t), 10)
	b = append(b, `,"p":"`...)
	n := p.target - len(b) - len(`"}`) - len(strconv.Itoa(int(op)))
	if n > 0 {
		b = append(b, p.pad[:n]...)
	}
	return append(b, `"}`...)
}

// stampOf reads the "t" (and "r") fields of an echo of an object built by
// [payload.build]. The engine hands over only well-formed JSON objects;
// bench's own compact form is read without a decoder, and any other (the
// original Python server re-encodes with ", " and ": " separators and its
// own key order, PROTOCOL §1.1) is decoded. ok is false when "t" is not a
// non-negative integer.
func stampOf(obj []byte) (round int64, t time.Duration, ok bool) {
	if r, rest, found := intField(obj, `{"r":`); found {
		if v, _, found := intField(rest, `,"t":`); found {
			return r, time.Duration(v), true
		}
	} else if v, _, found := intField(obj, `{"t":`); found {
		return 0, time.Duration(v), true
	}
	var m struct {
		R *int64 `json:"r"`
		T *int64 `json:"t"`
	}
	if codec.Unmarshal(obj, &m) != nil || m.T == nil || *m.T < 0 || (m.R != nil && *m.R < 0) {
		return 0, 0, false
	}
	if m.R != nil {
		round = *m.R
	}
	return round, time.Duration(*m.T), true
}

// intField parses prefix followed by a non-negative decimal integer at
// the start of b, up to a ',' or '}', returning the value and what
// follows.
func intField(b []byte, prefix string) (int64, []byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return 0, nil, false
	}
	b = b[len(prefix):]
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 18; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	if i == 0 || i == len(b) || (b[i] != ',' && b[i] != '}') {
		return 0, nil, false
	}
	return v, b[i:], true
}

// fitLoad sizes bench's own frames to the server's message size, or
// checks that the application's frames fit it and makes their queues, and
// returns the bytes of opcode and JSON per frame (the largest, for the
// application's).
func (b *benchRun) fitLoad(stderr io.Writer, clients []*engine.Client, o benchOptions, size int) (int, error) {
	if b.load != nil {
		if err := o.load.checkFrames(clients[0]); err != nil {
			return 0, err
		}
		for _, cl := range clients {
			b.load.pending[cl.ID()] = &inFlight{}
		}
		most := 0
		for _, f := range o.load.frames {
			most = max(most, len(strconv.Itoa(int(f.op)))+len(f.obj))
		}
		return most, nil
	}
	target := o.size
	if target > size {
		fmt.Fprintf(stderr, "note: --size %d does not fit the server's message size %d: using %d\n", o.size, size, size)
		target = size
	}
	if target < minPayload {
		if minPayload > size {
			return 0, fmt.Errorf("bench: the server's message size %d is too small for bench's frames (%d bytes)", size, minPayload)
		}
		fmt.Fprintf(stderr, "note: --size %d is smaller than bench's smallest frame: using %d\n", target, minPayload)
		target = minPayload
	}
	b.payload = newPayload(target)
	return target, nil
}
