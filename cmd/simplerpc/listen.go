package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// listenOptions are listen's flags.
type listenOptions struct {
	tls     clientTLSOptions
	addr    string
	all     bool
	count   int
	timeout time.Duration
	send    []string // --send values, "OPCODE [JSON]"
}

// newListenCmd builds the listen subcommand.
func newListenCmd(wrap runWrapper) *cobra.Command {
	var o listenOptions
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Print every frame received as a JSON line",
		Long: `listen connects and prints every application frame it receives as one JSON
line on stdout, until SIGINT, --count frames or --timeout:

  {"time":"2026-11-25T10:00:00.123456789Z","opcode":1,"data":{...}}

With --all it prints the protocol's own frames too (negative opcodes: the
-2 message size, -1 failures, pings and replies). A line on stderr says
when the connection is ready.

--send 'OPCODE [JSON]' sends a frame once the connection is ready, before
anything is printed: to join a room, say, and then hear it. It may be
given several times; the frames go out in order, each named on stderr.
They are checked before anything is sent: a bad OPCODE or JSON, or a frame
larger than the server's message size, is a usage error (exit 2).

--timeout bounds the whole command: connecting, waiting for the server's
message size, listening and closing. It exits 0 when interrupted, after
--count frames, or when --timeout ends a listen without --count; and 1 when
the server never announced its message size (within --timeout, or 10s
without one), closes the connection, or --timeout passes before --count
frames arrived.`,
		Example: `  simplerpc listen --addr 127.0.0.1:30000
  simplerpc listen --all --count 3
  simplerpc listen --send '2 {"room": "lobby"}' --send '3 {"say": "hello"}'`,
		Args: cobra.NoArgs,
		RunE: wrap(func(cmd *cobra.Command, _ []string) error {
			return listen(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "server address: host:port, tcp://host:port, tls://host:port, ws://host:port/path, wss://host:port/path or unix:///path")
	addClientTLSFlags(f, &o.tls)
	f.BoolVar(&o.all, "all", false, "print protocol frames (negative opcodes) too")
	f.IntVar(&o.count, "count", 0, "stop after this many frames (0: no limit)")
	f.StringArrayVar(&o.send, "send", nil, "send the frame 'OPCODE [JSON]' once connected, before printing (repeatable, sent in order)")
	f.DurationVar(&o.timeout, "timeout", 0, "bound on the whole command (0: no limit); exit 1 if --count frames have not arrived by then")
	return cmd
}

// frameLine is one line listen prints.
type frameLine struct {
	Time   string          `json:"time"`
	Opcode codec.Opcode    `json:"opcode"`
	Data   json.RawMessage `json:"data"`
}

// listenEvent is a frame handed from the event loop to the printer.
type listenEvent struct {
	at   time.Time
	op   codec.Opcode
	data []byte // owned copy
}

// listenQueue bounds the frames waiting to be printed; past it the event
// loop waits for the printer, which slows the server down rather than
// losing frames.
const listenQueue = 4096

// listen prints frames until ctx ends, the count is reached, the timeout
// passes or the connection closes.
func listen(ctx context.Context, stdout, stderr io.Writer, o listenOptions) error {
	if o.count < 0 || o.timeout < 0 {
		return usagef("--count and --timeout must not be negative")
	}
	if err := checkAddr(o.addr, false); err != nil {
		return err
	}
	sends, err := parseSends(o.send)
	if err != nil {
		return err
	}
	opts, err := o.tls.clientOptions(o.addr)
	if err != nil {
		return err
	}
	b := newBudget(o.timeout)
	ctx, cancel := b.context(ctx)
	defer cancel()

	events := make(chan listenEvent, listenQueue)
	// Closed when the printer has finished: a loop callback waiting on a
	// full queue goes on, and further frames are dropped.
	stopped := make(chan struct{})
	push := func(op codec.Opcode, data []byte) {
		select {
		case events <- listenEvent{at: time.Now(), op: op, data: append([]byte(nil), data...)}:
		case <-stopped:
		}
	}
	r := handler.NewRouter()
	if o.all {
		opts = append(opts,
			engine.WithTap(func(_ handler.Conn, op codec.Opcode, data []byte) { push(op, data) }))
	} else {
		r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
			push(op, data)
			return nil
		})
	}
	// The wait for the size starts before the dial, so that it ends before
	// the engine's own (see budget.dialTimeout).
	sizeCtx, wait := ctx, o.timeout
	if b.deadline.IsZero() {
		var cancelSize context.CancelFunc
		sizeCtx, cancelSize = context.WithTimeout(ctx, sizeWait)
		defer cancelSize()
		wait = sizeWait
	}
	cl, err := engine.Dial(sizeCtx, o.addr, r, clientOptions(b, opts...)...)
	if err != nil {
		return listenError(dialError(sizeCtx, o.addr, wait, err))
	}
	err = awaitReady(sizeCtx, cl, o.addr, wait)
	if err == nil {
		fmt.Fprintf(stderr, "listening to %s (message size %d)\n", o.addr, cl.MessageSize())
		err = send(ctx, stderr, cl, sends)
	}
	if err == nil {
		err = receive(ctx, stdout, cl, events, o)
	}
	close(stopped) // before the close, which the loop runs
	closeClient(cl, b)
	return listenError(err)
}

// listenError is listen's error for err: none after an interrupt, which
// is how listen is meant to stop.
func listenError(err error) error {
	if err == nil || errors.Is(err, errInterrupted) {
		return nil
	}
	return fmt.Errorf("listen: %w", err)
}

// receive prints the frames of events as they come, cl being ready.
func receive(ctx context.Context, stdout io.Writer, cl *engine.Client, events <-chan listenEvent, o listenOptions) error {
	printed := 0
	var printErr error
	emit := func(ev listenEvent) {
		if printErr != nil || o.count > 0 && printed >= o.count {
			return
		}
		printErr = writeJSONLine(stdout, frameLine{Time: ev.at.Format(time.RFC3339Nano), Opcode: ev.op, Data: ev.data})
		printed++
	}
	done := func() bool { return printErr != nil || o.count > 0 && printed >= o.count }
	for {
		select {
		case ev := <-events:
			emit(ev)
			if done() {
				return printErr
			}
		case <-cl.Done():
		drain:
			for {
				select {
				case ev := <-events:
					emit(ev)
				default:
					break drain
				}
			}
			if done() {
				return printErr
			}
			return fmt.Errorf("%s: %s", o.addr, describeEnd(cl.Err()))
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) && o.count > 0 {
				return fmt.Errorf("%d of %d frames in %v", printed, o.count, o.timeout)
			}
			return nil
		}
	}
}

// outFrame is a frame of --send.
type outFrame struct {
	op  codec.Opcode
	obj []byte // compact
}

// parseSends reads the --send values: an opcode, then optionally white
// space and a JSON object ({} when there is none).
func parseSends(values []string) ([]outFrame, error) {
	frames := make([]outFrame, 0, len(values))
	for _, v := range values {
		opText, text := strings.TrimSpace(v), ""
		if i := strings.IndexAny(opText, " \t\n"); i >= 0 {
			opText, text = opText[:i], opText[i:]
		}
		op, err := parseOpcode(opText)
		if err != nil {
			return nil, usagef("--send %q: %w", v, err)
		}
		if text = strings.TrimSpace(text); text == "" {
			text = "{}"
		}
		obj, err := compactObject([]byte(text))
		if err != nil {
			return nil, usagef("--send %q: %w", v, err)
		}
		frames = append(frames, outFrame{op: op, obj: obj})
	}
	return frames, nil
}

// send sends the frames of --send in order, once each is known to fit.
func send(ctx context.Context, stderr io.Writer, cl *engine.Client, frames []outFrame) error {
	for _, f := range frames {
		if err := checkFits(cl, f.op, f.obj, false); err != nil {
			return usagef("--send %d %s: %w", f.op, f.obj, err)
		}
	}
	for _, f := range frames {
		if err := cl.SendRaw(f.op, f.obj); err != nil {
			if errors.Is(err, engine.ErrClosed) {
				return fmt.Errorf("%s before the --send frames could be sent", ended(ctx, cl))
			}
			return err
		}
		fmt.Fprintf(stderr, "sent opcode %d %s\n", f.op, f.obj)
	}
	return nil
}
