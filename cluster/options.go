package cluster

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Option configures a [Node].
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	prefix     string
	interval   time.Duration
	timeout    time.Duration
	callTime   time.Duration
	maxQueued  int
	maxPending int
	logger     *slog.Logger
	onUp       func(NodeInfo)
	onDown     func(NodeInfo, error)
	now        func() time.Time
}

func defaultOptions() options {
	return options{
		prefix:     "simplerpc",
		interval:   time.Second,
		timeout:    3 * time.Second,
		callTime:   30 * time.Second,
		maxQueued:  8 << 20,
		maxPending: 10000,
		logger:     slog.New(slog.DiscardHandler),
		now:        time.Now,
	}
}

func invalidOption(name string, v any) error {
	return fmt.Errorf("%w: %s: %v", ErrInvalidOption, name, v)
}

func (o *options) validate() error {
	switch {
	case !validPrefix(o.prefix):
		return invalidOption("WithSubjectPrefix", fmt.Sprintf("%q", o.prefix))
	case o.interval <= 0:
		return invalidOption("WithHeartbeat interval", o.interval)
	case o.timeout <= o.interval:
		return invalidOption("WithHeartbeat timeout (must exceed the interval)", o.timeout)
	case o.callTime <= 0:
		return invalidOption("WithCallTimeout", o.callTime)
	case o.maxQueued <= 0:
		return invalidOption("WithMaxQueued", o.maxQueued)
	case o.maxPending <= 0:
		return invalidOption("WithMaxPending", o.maxPending)
	case o.logger == nil:
		return invalidOption("WithLogger", "nil")
	}
	return nil
}

// validPrefix accepts NATS subject tokens without wildcards or spaces.
func validPrefix(p string) bool {
	if p == "" || strings.ContainsAny(p, " \t\r\n*>") {
		return false
	}
	for _, t := range strings.Split(p, ".") {
		if t == "" {
			return false
		}
	}
	return true
}

// WithSubjectPrefix sets the first tokens of every NATS subject the node
// uses (docs/CLUSTER.md, "Subjects"): nodes with the same prefix form one
// cluster, so several clusters can share one NATS system. It must be a
// valid subject without wildcards, such as "simplerpc.chat". Defaults to
// "simplerpc".
func WithSubjectPrefix(prefix string) Option {
	return optionFunc(func(o *options) { o.prefix = prefix })
}

// WithHeartbeat sets how often the node announces itself and how long
// the others wait without hearing from it before they take it for down:
// its connections then leave presence and groups, and what was pending on
// it fails with [ErrHeartbeatTimeout]. The timeout must exceed the
// interval. Defaults to 1s and 3s.
func WithHeartbeat(interval, timeout time.Duration) Option {
	return optionFunc(func(o *options) { o.interval, o.timeout = interval, timeout })
}

// WithCallTimeout bounds a cross-node call or query (the server's
// ...Context lookups) whose context has no deadline, so that a call to a node that hangs ends. A context deadline,
// earlier or later, takes precedence. Defaults to 30s; it must be positive.
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.callTime = d })
}

// WithMaxQueued caps the bytes of cross-node messages the node has queued
// and NATS has not taken yet. Past it, cross-node sends and calls fail at
// once with [ErrBusFull]: a slow NATS never blocks a caller, an event
// loop included. Defaults to 8 MiB.
func WithMaxQueued(bytes int) Option {
	return optionFunc(func(o *options) { o.maxQueued = bytes })
}

// WithMaxPending caps the cross-node calls and queries waiting for an
// answer on the node, and separately the calls from other nodes it relays
// to its connections. Past it, a call fails with [ErrBusFull], and a
// relayed call is answered with the same error. Defaults to 10000.
func WithMaxPending(n int) Option {
	return optionFunc(func(o *options) { o.maxPending = n })
}

// WithLogger sets the logger for what has no caller to return to: bad
// messages from the bus (at most one record per kind per second), nodes
// coming and going, NATS connection changes. Defaults to none: the node is
// silent. It does not set the server's logger (engine.WithLogger does).
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithOnNodeUp sets a callback run when another node is seen for the
// first time, or again after it went down. Callbacks of WithOnNodeUp and
// WithOnNodeDown run one at a time, in order, on a goroutine of the node:
// they may call the node but should not block for long. Defaults to none.
func WithOnNodeUp(fn func(info NodeInfo)) Option {
	return optionFunc(func(o *options) { o.onUp = fn })
}

// WithOnNodeDown sets a callback run when another node goes down, with the
// reason: [ErrNodeLeft], [ErrHeartbeatTimeout] or [ErrNodeRestarted]. Its
// connections are then gone from presence and groups. It runs as the
// callback of [WithOnNodeUp] does. Defaults to none.
func WithOnNodeDown(fn func(info NodeInfo, reason error)) Option {
	return optionFunc(func(o *options) { o.onDown = fn })
}
