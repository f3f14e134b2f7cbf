package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// listenOptions are listen's flags.
type listenOptions struct {
	addr    string
	all     bool
	count   int
	timeout time.Duration
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
when the connection is ready. It exits 0 when interrupted or after
--count frames, and 1 when the server closes the connection or --timeout
passes before --count frames arrived.`,
		Example: `  simplerpc listen --addr 127.0.0.1:30000
  simplerpc listen --all --count 3`,
		Args: cobra.NoArgs,
		RunE: wrap(func(cmd *cobra.Command, _ []string) error {
			return listen(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", defaultAddr, "server address: host:port, tcp://host:port or unix:///path")
	f.BoolVar(&o.all, "all", false, "print protocol frames (negative opcodes) too")
	f.IntVar(&o.count, "count", 0, "stop after this many frames (0: no limit)")
	f.DurationVar(&o.timeout, "timeout", 0, "stop after this long (0: no limit); exit 1 if --count frames have not arrived by then")
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
	events := make(chan listenEvent, listenQueue)
	var stopped atomic.Bool // the printer has finished: drop further frames
	push := func(op codec.Opcode, data []byte) {
		if !stopped.Load() {
			events <- listenEvent{at: time.Now(), op: op, data: append([]byte(nil), data...)}
		}
	}
	r := handler.NewRouter()
	opts := sizeOptions()
	if o.all {
		opts = append(opts,
			engine.WithTap(func(_ handler.Conn, op codec.Opcode, data []byte) { push(op, data) }))
	} else {
		r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
			push(op, data)
			return nil
		})
	}

	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	cl, err := engine.Dial(ctx, o.addr, r, opts...)
	if err != nil {
		return fmt.Errorf("listen: cannot connect to %s: %w", o.addr, dialCause(err))
	}
	defer closeClient(cl)

	// Drain events while waiting, so a full queue never blocks the loop.
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
	defer func() {
		stopped.Store(true)
		// Unblock a loop callback waiting on a full queue.
		for {
			select {
			case <-events:
			default:
				return
			}
		}
	}()

	ready := cl.Ready()
	for {
		select {
		case <-ready:
			ready = nil
			fmt.Fprintf(stderr, "listening to %s (message size %d)\n", o.addr, cl.MessageSize())
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
			return fmt.Errorf("listen: connection closed by %s: %w", o.addr, cl.Err())
		case <-ctx.Done():
			if o.timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) && o.count > 0 {
				return fmt.Errorf("listen: %d of %d frames in %v", printed, o.count, o.timeout)
			}
			return nil
		}
	}
}
