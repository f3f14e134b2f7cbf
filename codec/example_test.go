package codec_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/simplerpc/simplerpc/codec"
)

// A frame is the opcode, a compact JSON object and space padding up to the
// message size.
func ExampleAppend() {
	buf := make([]byte, 0, 256) // reused from frame to frame
	buf, err := codec.Append(buf[:0], 256, 1, map[string]any{"some_data": 123})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(buf))
	fmt.Printf("%s|\n", bytes.TrimRight(buf, " "))

	// A payload that does not fit is an error, and nothing is appended.
	_, err = codec.Append(buf[:0], 16, 1, map[string]any{"some_data": "too long for 16 bytes"})
	fmt.Println(errors.Is(err, codec.ErrFrameTooLarge))
	// Output:
	// 256
	// 1{"some_data":123}|
	// true
}

// Decode reads the original Python simplerpc's spaced, escaped form as well
// as ours. The object is a sub-slice of the frame.
func ExampleDecode() {
	frame := []byte(`7{"u": "h\u00e9llo \u2603"}` + "        ")
	op, obj, err := codec.Decode(frame)
	if err != nil {
		fmt.Println(err)
		return
	}
	var v struct {
		U string `json:"u"`
	}
	if err := codec.Unmarshal(obj, &v); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(op, v.U)

	// A malformed frame is a *MalformedError carrying the failure to send
	// back to the peer.
	_, _, err = codec.Decode([]byte(`1{"a":      `))
	var me *codec.MalformedError
	if errors.As(err, &me) {
		fmt.Println(me.Reason()+":", me.Message)
	}
	// Output:
	// 7 héllo ☃
	// MalformedPayload: JSON malformed for opcode: 1
}

// Marshal once, then frame the same object for many connections.
func ExampleAppendRaw() {
	obj, err := codec.Marshal(map[string]string{"some_data": "this is sent to every connection"})
	if err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, 0, 3*64)
	for range 3 {
		if buf, err = codec.AppendRaw(buf, 64, 1, obj); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(len(buf))
	fmt.Printf("%s|\n", bytes.TrimRight(buf[:64], " "))

	// The object is validated: anything but one JSON object is refused.
	_, err = codec.AppendRaw(nil, 64, 1, []byte(`[1, 2]`))
	fmt.Println(errors.Is(err, codec.ErrNotObject))
	// Output:
	// 192
	// 1{"some_data":"this is sent to every connection"}|
	// true
}

// A client learns the server's message size from the first frame, which it
// reads before it knows how long frames are.
func ExampleScanner() {
	// What the server sends on connect: a -2 frame of 512 bytes, then more.
	stream, _ := codec.AppendMessageSize(nil, 512, 512)
	stream, _ = codec.Append(stream, 512, 1, map[string]int{"some_data": 123})

	s := codec.NewScanner(codec.MaxMessageSize)
	for received := 10; ; received += 10 { // bytes arrive a few at a time
		op, start, end, done, err := s.Scan(stream[:received])
		if err != nil {
			fmt.Println(err)
			return
		}
		if !done {
			continue
		}
		var m struct {
			MessageSize int `json:"message_size"`
		}
		if err := codec.Unmarshal(stream[start:end], &m); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(op, m.MessageSize, "after", received, "bytes")
		break
	}
	// Output:
	// message_size(-2) 512 after 30 bytes
}

// Unmarshal tells a value of the wrong type, answered with an
// ArgumentTypeError failure, from a syntax error.
func ExampleUnmarshal() {
	var args struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	err := codec.Unmarshal([]byte(`{"name": "x", "count": 3}`), &args)
	fmt.Println(args.Name, args.Count, err)

	err = codec.Unmarshal([]byte(`{"count": "three"}`), &args)
	var te *codec.TypeError
	if errors.As(err, &te) {
		fmt.Println(te.Reason(), te.Field)
	}

	err = codec.Unmarshal([]byte(`{"count": `), &args)
	fmt.Println(errors.Is(err, codec.ErrMalformed))
	// Output:
	// x 3 <nil>
	// ArgumentTypeError count
	// true
}

// A failure always reaches the peer: a message too long for the frame is
// shortened.
func ExampleAppendFailure() {
	frame, err := codec.AppendFailure(nil, 64, "ArgumentValueError", "count must be between 1 and 100, got 1000")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s|\n", frame)
	// Output:
	// -1{"reason":"ArgumentValueError","message":"count must be betw"}|
}

// A caller builds a request's envelope around its argument and frames it;
// the callee reads the frame with DecodeFrame, which also reads every other
// frame, and answers with a reply built the same way.
func ExampleAppendRequest() {
	args, err := codec.Marshal(map[string]int{"a": 2, "b": 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	frame, err := codec.AppendValidated(nil, 64, codec.OpRequest, codec.AppendRequest(nil, 1, 1, args))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s|\n", bytes.TrimRight(frame, " "))

	// The callee: call.Data is borrowed from frame.
	op, _, call, err := codec.DecodeFrame(frame)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(op, call.ID, call.Op, string(call.Data))
	reply, err := codec.AppendValidated(nil, 64, codec.OpReply, codec.AppendReply(nil, call.ID, []byte(`{"sum":5}`)))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s|\n", bytes.TrimRight(reply, " "))

	// Another peer's layout reads the same; a request without an op does
	// not, and is answered with a -1 failure carrying the error's Message.
	_, _, call, _ = codec.DecodeFrame([]byte(`-3{"op": 1, "id": 2, "data": {"a": 1, "b": 1}}`))
	fmt.Println(call.ID, call.Op, string(call.Data))
	_, _, _, err = codec.DecodeFrame([]byte(`-3{"id": 3, "data": {}}`))
	var me *codec.MalformedError
	if errors.Is(err, codec.ErrMalformedCall) && errors.As(err, &me) {
		fmt.Println(me.Reason()+":", me.Message)
	}
	// Output:
	// -3{"id":1,"op":1,"data":{"a":2,"b":3}}|
	// request(-3) 1 1 {"a":2,"b":3}
	// -4{"id":1,"data":{"sum":5}}|
	// 2 1 {"a": 1, "b": 1}
	// MalformedPayload: Malformed request frame
}
