// Package wire holds what the benchmark servers and load generators agree
// on: the opcodes, the frames the load generators send, and where in those
// frames the timestamps sit, so that the load generator reads them back
// without a JSON decoder.
package wire

import (
	"fmt"
	"strings"

	"github.com/simplerpc/simplerpc/codec"
)

// Opcodes every comparison server implements.
const (
	// OpEcho frames are answered with the same object on the same opcode.
	OpEcho codec.Opcode = 0
	// OpBroadcast frames are sent to every connection of the server,
	// the sender included.
	OpBroadcast codec.Opcode = 1
	// OpCall is the opcode of the call scenario (simplerpc's -3 requests).
	OpCall codec.Opcode = 2
)

// DefaultSize is the frame size of every scenario.
const DefaultSize = 256

// WSPath is the path the WebSocket servers upgrade at.
const WSPath = "/rpc"

// Timestamp layout: the first field of every frame the load generators
// send is "t", a string of 19 decimal digits (nanoseconds since the load
// generator started), at a fixed offset. A JSON string, not a number, so
// that leading zeros stay valid JSON.
const (
	// TimeOff is the offset of the 19 digits in an echo or broadcast frame.
	TimeOff = len(`0{"t":"`)
	// TimeLen is the number of digits.
	TimeLen = 19
	// RoundOff is the offset of the 10 digits of the round number in a
	// broadcast frame.
	RoundOff = len(`1{"t":"0000000000000000000","r":"`)
	// RoundLen is the number of digits of the round.
	RoundLen = 10
)

// echoObject is the JSON object of an echo frame, with the time zeroed. It
// looks like a small application message: a few fields of different types,
// 191 bytes with the opcode; the rest of the 256-byte frame is padding.
const echoObject = `{"t":"0000000000000000000","user":"bench-user-0042","seq":123456,` +
	`"tags":["alpha","beta","gamma"],"pos":{"x":12.5,"y":-3.25,"z":0},"ok":true,"note":"%s"}`

// EchoFrame returns an echo frame of size bytes with a zero time.
func EchoFrame(size int) ([]byte, error) {
	obj := fmt.Sprintf(echoObject, strings.Repeat("x", 40))
	return codec.AppendRaw(nil, size, OpEcho, []byte(obj))
}

// BroadcastFrame returns a broadcast frame of size bytes with a zero time
// and round.
func BroadcastFrame(size int) ([]byte, error) {
	obj := `{"t":"0000000000000000000","r":"0000000000","note":"this is sent to every connection"}`
	return codec.AppendRaw(nil, size, OpBroadcast, []byte(obj))
}

// PutDigits writes v as exactly len(dst) decimal digits, with leading zeros.
func PutDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// Digits parses the decimal digits of b; ok is false for anything else.
func Digits(b []byte) (v uint64, ok bool) {
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, len(b) > 0
}

// SizeFrame returns the -2 frame of size bytes that every comparison
// server sends first.
func SizeFrame(size int) []byte {
	f, err := codec.AppendMessageSize(nil, size, size)
	if err != nil {
		panic(err)
	}
	return f
}

// CallArgs is the request and the reply of the call scenario: the same
// fields as an echo frame, decoded into a struct on both sides.
type CallArgs struct {
	T    int64    `json:"t"`
	User string   `json:"user"`
	Seq  int      `json:"seq"`
	Tags []string `json:"tags"`
	Pos  struct {
		X, Y, Z float64
	} `json:"pos"`
	OK   bool   `json:"ok"`
	Note string `json:"note"`
}

// NewCallArgs returns the request the call scenario sends.
func NewCallArgs() CallArgs {
	a := CallArgs{User: "bench-user-0042", Seq: 123456, Tags: []string{"alpha", "beta", "gamma"}, OK: true,
		Note: strings.Repeat("x", 40)}
	a.Pos.X, a.Pos.Y = 12.5, -3.25
	return a
}
