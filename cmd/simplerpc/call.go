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
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// callOptions are call's flags.
type callOptions struct {
	tls     clientTLSOptions
	addr    string
	timeout time.Duration
	request bool
	noReply bool
	replyOp int // --reply-opcode; -1: OPCODE
}

// newCallCmd builds the call subcommand.
func newCallCmd(wrap runWrapper) *cobra.Command {
	var o callOptions
	cmd := &cobra.Command{
		Use:   "call [flags] OPCODE [JSON]",
		Short: "Send one frame and print the answer that comes back",
		Long: `call connects, sends one frame on OPCODE (a non-negative integer) carrying
JSON (a JSON object, "{}" when omitted, "-" to read it from stdin), and
prints the answer as one JSON line on stdout: the first frame that comes
back on OPCODE (or on --reply-opcode), or the first failure:

  {"opcode":0,"data":{...}}
  {"failure":{"reason":"ArgumentMissing","message":"..."}}

Frames on other opcodes are not the answer: a server may push them at any
time (a greeting on connect, a broadcast), and they are skipped; stderr
names the first one when no answer comes.

A one-way frame may have no answer. When nothing comes back within
--timeout, call says so on stderr and exits 0, once the frame is written
(as with --no-reply); it exits 1 when a failure came back, or when the
server closed the connection or sent a frame that makes no sense.

--no-reply waits for nothing: call closes the connection right after the
frame and exits 0 once the engine has written the frame to the socket and
closed the connection behind it, so the frame has left for the server,
ahead of the close. Nothing confirms that the server read it; a call
(--request) does.

With --request the frame is a call (the request/reply extension, opcodes -3
to -5): the server's reply to this very request is printed instead of the
first frame, as {"opcode":N,"reply":{...}}; no reply within --timeout
exits 1.

--timeout bounds the whole command: connecting, waiting for the server's
message size, the answer and closing. Exit status: 0 as above, 1 after a
failure, a time-out or a connection error, 2 when OPCODE, JSON or --addr is
invalid or the frame is larger than the server's message size; nothing is
sent then.`,
		Example: `  simplerpc call 0 '{"some_data": 123}'
  simplerpc call --addr 127.0.0.1:30000 --timeout 2s 1 '{"hello": "everyone"}'
  simplerpc call --no-reply 5 '{"event": "tick"}'
  echo '{"a": 1}' | simplerpc call 0 -`,
		Args: cobra.RangeArgs(1, 2),
		RunE: wrap(func(cmd *cobra.Command, args []string) error {
			op, obj, err := parseCallArgs(args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			return call(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, op, obj)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "server address: host:port, tcp://host:port, tls://host:port, ws://host:port/path, wss://host:port/path or unix:///path")
	addClientTLSFlags(f, &o.tls)
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "bound on the whole command: connecting, the answer and closing")
	f.BoolVar(&o.request, "request", false, "send a call (request frame) and print its reply")
	f.BoolVar(&o.noReply, "no-reply", false, "exit 0 once the frame is written and the connection closed, waiting for no answer")
	f.IntVar(&o.replyOp, "reply-opcode", -1, "the opcode the answer comes on (default: OPCODE); frames on other opcodes are skipped")
	return cmd
}

// parseCallArgs validates OPCODE and JSON before anything is sent, and
// returns the object in compact form.
func parseCallArgs(args []string, stdin io.Reader) (codec.Opcode, []byte, error) {
	op, err := parseOpcode(args[0])
	if err != nil {
		return 0, nil, err
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
	return op, obj, nil
}

// parseOpcode reads an application opcode given on the command line.
func parseOpcode(text string) (codec.Opcode, error) {
	n, err := strconv.ParseInt(text, 10, 32)
	if err != nil || n < 0 {
		return 0, usagef("OPCODE %q: want a non-negative integer (negative opcodes belong to the protocol)", text)
	}
	return codec.Opcode(n), nil
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
func call(ctx context.Context, stdout, stderr io.Writer, o callOptions, op codec.Opcode, obj []byte) error {
	if o.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if o.request && o.noReply {
		return usagef("--no-reply and --request exclude each other: a call has a reply")
	}
	if err := checkAddr(o.addr, false); err != nil {
		return err
	}
	want := op
	if o.replyOp != -1 && (o.request || o.noReply) {
		return usagef("--reply-opcode is for a one-way frame's answer: not with --request or --no-reply")
	}
	if o.replyOp >= 0 {
		want = codec.Opcode(o.replyOp)
	} else if o.replyOp != -1 {
		return usagef("--reply-opcode %d: want a non-negative opcode", o.replyOp)
	}
	tlsOpts, err := o.tls.clientOptions(o.addr)
	if err != nil {
		return err
	}
	b := newBudget(o.timeout)
	ctx, cancel := b.context(ctx)
	defer cancel()

	w := &callWatch{results: make(chan callResult, 1), want: want}
	r := handler.NewRouter()
	r.Forward(w.frame)
	handler.Handle(r, codec.OpFailure, func(c handler.Conn, f *handler.Error) error { w.failure(c, f); return nil })
	cl, err := engine.Dial(ctx, o.addr, r, clientOptions(b, append(tlsOpts, engine.WithTap(w.tap))...)...)
	if err != nil {
		return fmt.Errorf("call: %w", dialError(ctx, o.addr, o.timeout, err))
	}
	confirm, err := exchange(ctx, stdout, stderr, cl, w, o, b, op, obj)
	if err != nil || !confirm {
		closeClient(cl, b)
		if err != nil {
			return fmt.Errorf("call: %w", err)
		}
		return nil
	}
	// Only the close shows that a one-way frame was written.
	if !closeClient(cl, b) {
		return fmt.Errorf("call: the frame was not confirmed written within %v", o.timeout)
	}
	if reason := cl.Err(); !errors.Is(reason, engine.ErrLocalClose) {
		return fmt.Errorf("call: %s before the frame was confirmed written", describeEnd(reason))
	}
	return nil
}

// exchange sends the frame on cl once it is ready and prints what comes
// back. confirm asks the caller to confirm, by closing cl, that a one-way
// frame was written: with --no-reply, or when nothing came back.
func exchange(ctx context.Context, stdout, stderr io.Writer, cl *engine.Client, w *callWatch, o callOptions,
	b budget, op codec.Opcode, obj []byte) (confirm bool, err error) {
	if err := awaitReady(ctx, cl, o.addr, o.timeout); err != nil {
		return false, err
	}
	if err := checkFits(cl, op, obj, o.request); err != nil {
		return false, usageError{err: err}
	}
	if o.request {
		return false, request(ctx, stdout, cl, w, o, op, obj)
	}

	w.sent.Store(true)
	if err := cl.SendRaw(op, obj); err != nil {
		if errors.Is(err, engine.ErrClosed) {
			return false, fmt.Errorf("%s before the frame could be sent", ended(ctx, cl))
		}
		return false, err
	}
	if o.noReply {
		return true, nil
	}
	var res callResult
	select {
	case res = <-w.results:
	case <-cl.Done():
		// A frame may have arrived just before the close.
		select {
		case res = <-w.results:
		default:
			return false, fmt.Errorf("%s before the answer came back%s", describeEnd(cl.Err()), w.skippedNote())
		}
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, errInterrupted
		}
		if odd := w.oddFrame(); odd != "" {
			return false, fmt.Errorf("the server sent %s, and nothing else came back within %v", odd, o.timeout)
		}
		fmt.Fprintf(stderr, "call: nothing came back within %v on opcode %d%s (a one-way frame needs no answer; --no-reply does not wait)\n",
			o.timeout, w.want, w.skippedNote())
		return true, nil
	}
	if res.Failure != nil {
		return false, printFailure(stdout, res.Failure)
	}
	return false, writeJSONLine(stdout, res)
}

// request makes the call of --request and prints its reply or failure.
func request(ctx context.Context, stdout io.Writer, cl *engine.Client, w *callWatch, o callOptions, op codec.Opcode, obj []byte) error {
	var reply json.RawMessage
	err := cl.Call(ctx, op, json.RawMessage(obj), &reply)
	switch {
	case err == nil:
		return writeJSONLine(stdout, callResult{Opcode: &op, Reply: reply})
	case handler.ReasonOf(err) != "":
		return printFailure(stdout, handler.Failure(err))
	case ctx.Err() != nil:
		if odd := w.oddFrame(); odd != "" {
			return fmt.Errorf("the server sent %s, and no reply within %v", odd, o.timeout)
		}
		return ctxError(ctx, fmt.Sprintf("no reply within %v", o.timeout))
	case errors.Is(err, engine.ErrClosed):
		return fmt.Errorf("%s before the reply came", ended(ctx, cl))
	}
	return err
}

// callWatch gathers, on the client's event loop, what call waits for: the
// first frame on the answer's opcode or failure after the send, the first
// frame skipped for being on another opcode, and the first frame that
// makes no sense, to name them when nothing else comes. It is safe for
// concurrent use by multiple goroutines.
type callWatch struct {
	want    codec.Opcode // the answer's opcode
	sent    atomic.Bool
	results chan callResult // the first result; capacity 1
	once    sync.Once

	mu      sync.Mutex // guards odd, skipped and firstSkip
	odd     string
	skipped int
	first   string
}

// deliver hands over the first result after the send. The callbacks run
// on the event loop and must not block. sent is set before the frame is
// handed to the engine, so that an answer faster than the sending
// goroutine is not lost; what arrives before it is no answer, and what
// arrives after it on another opcode is skipped by frame.
func (w *callWatch) deliver(r callResult) {
	if w.sent.Load() {
		w.once.Do(func() { w.results <- r })
	}
}

// frame receives application frames (a handler.ForwardFunc): one on the
// answer's opcode is the answer; any other was pushed by the server (on
// connect, or to everyone) and is only counted.
func (w *callWatch) frame(_ handler.Conn, op codec.Opcode, data []byte) error {
	if op != w.want {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.skipped++; w.skipped == 1 {
			w.first = fmt.Sprintf("%d%s", op, clip(data, 120))
		}
		return nil
	}
	w.deliver(callResult{Opcode: &op, Data: append(json.RawMessage(nil), data...)})
	return nil
}

// skippedNote describes the frames skipped for their opcode, as a clause
// to append to a message, or "".
func (w *callWatch) skippedNote() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.skipped == 0 {
		return ""
	}
	return fmt.Sprintf(" (skipped %d frame(s) on other opcodes, the first %s; --reply-opcode picks the answer's)", w.skipped, w.first)
}

// failure receives -1 frames; one without a reason is left to tap.
func (w *callWatch) failure(_ handler.Conn, f *handler.Error) {
	if f.Reason != "" {
		w.deliver(callResult{Failure: f})
	}
}

// tap sees every well-formed frame and keeps the first that call can make
// nothing of: a failure without a reason, a reply that completes no call,
// an opcode the protocol does not define. Frames that do not decode at all
// never reach it: the engine answers them with a MalformedPayload failure
// and tells the application nothing.
func (w *callWatch) tap(_ handler.Conn, op codec.Opcode, data []byte) {
	var what string
	switch op {
	case codec.OpFailure:
		var f handler.Error
		if codec.Unmarshal(data, &f) == nil && f.Reason != "" {
			return
		}
		what = "a failure frame without a reason"
	case codec.OpReply, codec.OpReplyFailure:
		// Named only when no reply completed the call: then it was
		// malformed or for another id.
		what = "a reply that matches no call (malformed or for another id)"
	case codec.OpMessageSize, codec.OpRequest, codec.OpPing, codec.OpPong:
		return
	case codec.OpAuth:
		// The server's acknowledgement of --auth-token's credentials,
		// {"identity": ...}: what call asked for.
		return
	default:
		if op >= 0 {
			return
		}
		what = "a frame with an opcode the protocol does not define"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.odd == "" {
		w.odd = fmt.Sprintf("%s, %d%s", what, op, clip(data, 120))
	}
}

// oddFrame returns the first frame tap could make nothing of, described,
// or "".
func (w *callWatch) oddFrame() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.odd
}

// clip returns b as text, cut to n bytes with "...".
func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// printFailure prints a failure line and returns the error that makes the
// process exit 1.
func printFailure(stdout io.Writer, f *handler.Error) error {
	if err := writeJSONLine(stdout, callResult{Failure: f}); err != nil {
		return err
	}
	return fmt.Errorf("remote failure: %s", f.Error())
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

// writeJSONLine writes v as one line of JSON, without HTML escaping.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
