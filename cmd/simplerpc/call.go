package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// callOptions are call's flags.
type callOptions struct {
	addr    string
	timeout time.Duration
	request bool
}

// newCallCmd builds the call subcommand.
func newCallCmd(wrap runWrapper) *cobra.Command {
	var o callOptions
	cmd := &cobra.Command{
		Use:   "call [flags] OPCODE [JSON]",
		Short: "Send one frame and print the first frame that comes back",
		Long: `call connects, sends one frame on OPCODE (a non-negative integer) carrying
JSON (a JSON object, "{}" when omitted, "-" to read it from stdin), and
prints the first application frame or failure that comes back as one JSON
line on stdout:

  {"opcode":0,"data":{...}}
  {"failure":{"reason":"ArgumentMissing","message":"..."}}

It exits 0 after a frame, 1 after a failure, a time-out (--timeout covers
connecting and waiting) or a connection error, and 2 when OPCODE or JSON is
invalid; nothing is sent then.

With --request the frame is a call (the request/reply extension, opcodes -3
to -5): the server's reply to this very request is printed instead of the
first frame, as {"opcode":N,"reply":{...}}.`,
		Example: `  simplerpc call 0 '{"some_data": 123}'
  simplerpc call --addr 127.0.0.1:30000 --timeout 2s 1 '{"hello": "everyone"}'
  echo '{"a": 1}' | simplerpc call 0 -`,
		Args: cobra.RangeArgs(1, 2),
		RunE: wrap(func(cmd *cobra.Command, args []string) error {
			op, obj, err := parseCallArgs(args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return call(cmd.Context(), cmd.OutOrStdout(), o, op, obj)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "server address: host:port, tcp://host:port or unix:///path")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "give up after this long, connecting included")
	f.BoolVar(&o.request, "request", false, "send a call (request frame) and print its reply")
	return cmd
}

// parseCallArgs validates OPCODE and JSON before anything is sent, and
// returns the object in compact form.
func parseCallArgs(args []string, stdin io.Reader) (codec.Opcode, []byte, error) {
	n, err := strconv.ParseInt(args[0], 10, 32)
	if err != nil || n < 0 {
		return 0, nil, usagef("OPCODE %q: want a non-negative integer (negative opcodes belong to the protocol)", args[0])
	}
	text := "{}"
	if len(args) == 2 {
		text = args[1]
	}
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, codec.MaxMessageSize+1))
		if err != nil {
			return 0, nil, fmt.Errorf("read JSON from stdin: %w", err)
		}
		text = string(b)
	}
	obj, err := compactObject([]byte(text))
	if err != nil {
		return 0, nil, usageError{err: err}
	}
	return codec.Opcode(n), obj, nil
}

// compactObject checks that text is one JSON object in UTF-8 and returns
// it compacted.
func compactObject(text []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, text); err != nil {
		return nil, fmt.Errorf("JSON argument is not valid JSON: %w", err)
	}
	obj := buf.Bytes()
	if obj[0] != '{' {
		return nil, fmt.Errorf("JSON argument must be an object ({...}), got %s", jsonKind(obj[0]))
	}
	if !utf8.Valid(obj) {
		return nil, errors.New("JSON argument is not valid UTF-8")
	}
	return obj, nil
}

// jsonKind names the kind of JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// callResult is the one JSON line call prints.
type callResult struct {
	Opcode  *codec.Opcode   `json:"opcode,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Reply   json.RawMessage `json:"reply,omitempty"`
	Failure *handler.Error  `json:"failure,omitempty"`
}

// call sends one frame and prints what comes back.
func call(ctx context.Context, stdout io.Writer, o callOptions, op codec.Opcode, obj []byte) error {
	if o.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if err := checkAddr(o.addr, false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	// The first frame or failure after the send; the callbacks run on the
	// client's event loop and must not block.
	results := make(chan callResult, 1)
	var sent atomic.Bool
	var once sync.Once
	deliver := func(r callResult) {
		if sent.Load() {
			once.Do(func() { results <- r })
		}
	}
	r := handler.NewRouter()
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		deliver(callResult{Opcode: &op, Data: append(json.RawMessage(nil), data...)})
		return nil
	})
	cl, err := engine.Dial(ctx, o.addr, r, append(sizeOptions(),
		engine.WithOnFailure(func(_ handler.Conn, f *handler.Error) {
			deliver(callResult{Failure: f})
		}))...)
	if err != nil {
		return fmt.Errorf("call: cannot connect to %s: %w", o.addr, dialCause(err))
	}
	defer closeClient(cl)

	select {
	case <-cl.Ready():
	case <-cl.Done():
		return fmt.Errorf("call: connection to %s closed before the server announced its message size: %w", o.addr, cl.Err())
	case <-ctx.Done():
		return timeoutError(ctx, fmt.Sprintf("%s did not announce its message size within %v", o.addr, o.timeout))
	}
	if err := checkFits(cl, op, obj, o.request); err != nil {
		return fmt.Errorf("call: %w", err)
	}

	var res callResult
	if o.request {
		var reply json.RawMessage
		err := cl.Call(ctx, op, json.RawMessage(obj), &reply)
		if err != nil {
			if f := handler.Failure(err); handler.ReasonOf(err) != "" {
				return printFailure(stdout, f)
			}
			if ctx.Err() != nil {
				return timeoutError(ctx, fmt.Sprintf("no reply within %v", o.timeout))
			}
			return fmt.Errorf("call: %w", err)
		}
		res = callResult{Opcode: &op, Reply: reply}
	} else {
		sent.Store(true)
		if err := cl.SendRaw(op, obj); err != nil {
			return fmt.Errorf("call: %w", err)
		}
		select {
		case res = <-results:
		case <-cl.Done():
			// A frame may have arrived just before the close.
			select {
			case res = <-results:
			default:
				return fmt.Errorf("call: connection closed before anything came back: %w", cl.Err())
			}
		case <-ctx.Done():
			return timeoutError(ctx, fmt.Sprintf("nothing came back within %v", o.timeout))
		}
	}
	if res.Failure != nil {
		return printFailure(stdout, res.Failure)
	}
	return writeJSONLine(stdout, res)
}

// timeoutError explains why ctx ended: the time-out (msg), or a signal.
func timeoutError(ctx context.Context, msg string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errors.New("call: " + msg)
	}
	return errors.New("call: interrupted")
}

// printFailure prints a failure line and returns the error that makes the
// process exit 1.
func printFailure(stdout io.Writer, f *handler.Error) error {
	if err := writeJSONLine(stdout, callResult{Failure: f}); err != nil {
		return err
	}
	return fmt.Errorf("call: remote failure: %s", f.Error())
}

// checkFits reports a frame too large for the server's message size, which
// the engine would otherwise drop on its event loop without telling the
// sender. A call's request frame wraps obj in {"id":N,"op":N,"data":...}.
func checkFits(cl *engine.Client, op codec.Opcode, obj []byte, request bool) error {
	size := cl.MessageSize()
	need := len(strconv.Itoa(int(op))) + len(obj)
	if request {
		need = len(`-3{"id":18446744073709551615,"op":,"data":}`) + len(strconv.Itoa(int(op))) + len(obj)
	}
	if need > size {
		return fmt.Errorf("the frame needs %d bytes but the server's message size is %d", need, size)
	}
	return nil
}

// dialCause returns the operating system's reason for a failed dial
// ("connection refused") when there is one, else err.
func dialCause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// closeClient closes cl and waits a bounded time for it to finish.
func closeClient(cl *engine.Client) {
	_ = cl.Close()
	select {
	case <-cl.Done():
	case <-time.After(2 * time.Second):
	}
}

// writeJSONLine writes v as one line of JSON, without HTML escaping.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
