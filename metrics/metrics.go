package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// ErrInvalidOption wraps every invalid option value given to [Register];
// the message names the option.
var ErrInvalidOption = errors.New("metrics: invalid option")

// Option configures [Register].
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	opcodes []codec.Opcode
	buckets []float64
	timeout time.Duration
	labels  prometheus.Labels
}

// DefaultBuckets are the call-duration histogram's bucket bounds, in
// seconds: from 50µs, a call on loopback, to 10s.
var DefaultBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// WithOpcodes lists the application opcodes that label frames and call
// durations one by one; every other application opcode is labelled
// "other", so that the number of series stays bounded whatever the peers
// send. The protocol's opcodes (-1 to -7) always label frames one by one.
// Opcodes must lie in [0, 255], the range the engine counts one by one.
// Defaults to none: every application opcode is "other".
func WithOpcodes(ops ...codec.Opcode) Option {
	return optionFunc(func(o *options) { o.opcodes = append(o.opcodes, ops...) })
}

// WithBuckets sets the bucket bounds of the call-duration histogram, in
// seconds, in increasing order. Defaults to [DefaultBuckets].
func WithBuckets(seconds ...float64) Option {
	return optionFunc(func(o *options) { o.buckets = slices.Clone(seconds) })
}

// WithScrapeTimeout sets how long a scrape waits for the event loops to
// report their outbound bytes and calls (see [engine.Host.Backlog]); a
// loop that does not answer in time leaves those gauges out of that scrape
// and counts in simplerpc_stats_timeouts_total. It must be positive.
// Defaults to 1s.
func WithScrapeTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.timeout = d })
}

// WithConstLabels adds labels with fixed values to every metric, to tell
// several servers apart in one registry (a name, a port). Defaults to
// none.
func WithConstLabels(l prometheus.Labels) Option {
	return optionFunc(func(o *options) {
		if o.labels == nil {
			o.labels = prometheus.Labels{}
		}
		for k, v := range l {
			o.labels[k] = v
		}
	})
}

// Register registers srv's metrics on reg: a collector that reads
// [engine.Server.Stats] and [engine.Host.Backlog] on each scrape, and
// the call-duration histogram, fed by a [handler.Middleware] it adds to
// the server's router for the calls peers make (Call only, so frames pay
// nothing) and by the server's call observer ([engine.Host.ObserveCalls],
// which it replaces) for the calls the server makes. No goroutine is
// started and nothing is counted per frame beyond what the engine counts
// anyway.
//
// Call it once per server, before or after Start. A router shared by
// several servers feeds the inbound calls of all of them into the
// histogram of each that is registered. It returns an error wrapping
// [ErrInvalidOption] for a bad option, or reg's error (a name already
// registered, for example a second server without [WithConstLabels]), and
// then registers and changes nothing.
func Register(reg prometheus.Registerer, srv *engine.Server, opts ...Option) error {
	o := options{buckets: DefaultBuckets, timeout: time.Second}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return err
	}
	d := newDurations(&o)
	c := newCollector(srv, &o)
	if err := reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register: %w", err)
	}
	if err := reg.Register(d.vec); err != nil {
		reg.Unregister(c)
		return fmt.Errorf("metrics: register: %w", err)
	}
	srv.Host().Router().Use(d.middleware())
	srv.Host().ObserveCalls(d.observeOutbound)
	return nil
}

func (o *options) validate() error {
	for _, op := range o.opcodes {
		if op < 0 || op > 255 {
			return fmt.Errorf("%w: WithOpcodes: %d is outside [0, 255]", ErrInvalidOption, op)
		}
	}
	if len(o.buckets) == 0 || !slices.IsSorted(o.buckets) {
		return fmt.Errorf("%w: WithBuckets: %v is empty or not increasing", ErrInvalidOption, o.buckets)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("%w: WithScrapeTimeout: %v is not positive", ErrInvalidOption, o.timeout)
	}
	return nil
}

// Names of the metrics, in the order of docs/OPERATIONS.md.
const (
	nameConnsOpen       = "simplerpc_connections_open"
	nameAccepted        = "simplerpc_connections_accepted_total"
	nameRefused         = "simplerpc_connections_refused_total"
	nameDisconnects     = "simplerpc_disconnects_total"
	nameFramesIn        = "simplerpc_frames_received_total"
	nameFramesOut       = "simplerpc_frames_sent_total"
	nameBytesIn         = "simplerpc_received_bytes_total"
	nameBytesOut        = "simplerpc_sent_bytes_total"
	nameFailSent        = "simplerpc_failures_sent_total"
	nameFailRecv        = "simplerpc_failures_received_total"
	nameDropped         = "simplerpc_frames_dropped_total"
	namePaused          = "simplerpc_read_pauses_total"
	nameCallsInFlight   = "simplerpc_calls_in_flight"
	nameCallDuration    = "simplerpc_call_duration_seconds"
	nameOutbound        = "simplerpc_outbound_queued_bytes"
	nameOutboundMax     = "simplerpc_outbound_queued_max_bytes"
	nameLoops           = "simplerpc_event_loops"
	nameLoopQueue       = "simplerpc_loop_queue_tasks"
	nameLoopQueueMax    = "simplerpc_loop_queue_max_tasks"
	nameWorkerQueue     = "simplerpc_worker_queue_connections"
	nameWorkerCallbacks = "simplerpc_worker_queue_callbacks"
	nameTimeouts        = "simplerpc_stats_timeouts_total"
)

// names are every metric the package exports.
var names = []string{nameConnsOpen, nameAccepted, nameRefused, nameDisconnects, nameFramesIn, nameFramesOut,
	nameBytesIn, nameBytesOut, nameFailSent, nameFailRecv, nameDropped, namePaused, nameCallsInFlight, nameCallDuration,
	nameOutbound, nameOutboundMax, nameLoops, nameLoopQueue, nameLoopQueueMax, nameWorkerQueue,
	nameWorkerCallbacks, nameTimeouts}

// Label values of the direction label.
const (
	inbound  = "inbound"
	outbound = "outbound"
)

// collector reads a server's Stats and Backlog on each scrape.
type collector struct {
	srv      *engine.Server
	timeout  time.Duration
	opcodes  []codec.Opcode // labelled one by one: the listed ones, then the protocol's
	opLabels []string
	timeouts atomic.Uint64

	connsOpen, accepted, refused, disconnects          *prometheus.Desc
	framesIn, framesOut, bytesIn, bytesOut             *prometheus.Desc
	failSent, failRecv, dropped, paused, callsInFlight *prometheus.Desc
	outbound, outboundMax, loops, loopQueue            *prometheus.Desc
	loopQueueMax, workerQueue, workerCallbacks, tmo    *prometheus.Desc
}

func newCollector(srv *engine.Server, o *options) *collector {
	c := &collector{srv: srv, timeout: o.timeout}
	seen := map[codec.Opcode]bool{}
	for _, op := range o.opcodes {
		if !seen[op] {
			seen[op] = true
			c.opcodes = append(c.opcodes, op)
		}
	}
	slices.Sort(c.opcodes)
	for op := codec.OpFailure; op >= codec.OpPong; op-- {
		c.opcodes = append(c.opcodes, op)
	}
	for _, op := range c.opcodes {
		c.opLabels = append(c.opLabels, strconv.Itoa(int(op)))
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, o.labels)
	}
	c.connsOpen = desc(nameConnsOpen, "Connections open now.")
	c.accepted = desc(nameAccepted, "Connections accepted and opened; refused ones are not counted.")
	c.refused = desc(nameRefused, "Connections refused, by reason (server_full, shutdown, per_ip, rate before they opened; auth: authentication failed or late, also in disconnects).", "reason")
	c.disconnects = desc(nameDisconnects, "Connections closed, by class of reason (eof, idle, slow_consumer, rate_limit, inbound_full, shutdown, local_close, handed_over, go_away, auth, handshake, protocol, error); a connection a handover moved is handed_over, not error.", "reason")
	c.framesIn = desc(nameFramesIn, "Frames read, by opcode: the protocol's (-1 to -7) and the listed application opcodes one by one, the rest as other.", "opcode")
	c.framesOut = desc(nameFramesOut, "Frames built to be written, by opcode: the protocol's (-1 to -7) and the listed application opcodes one by one, the rest as other.", "opcode")
	c.bytesIn = desc(nameBytesIn, "Bytes of frames read, at the frame size.")
	c.bytesOut = desc(nameBytesOut, "Bytes of frames built to be written, at the frame size.")
	c.failSent = desc(nameFailSent, "Failure frames (-1 and -5) sent, by reason; reasons that are neither the handler's nor the engine's as other.", "reason")
	c.failRecv = desc(nameFailRecv, "Failure frames (-1 and -5) received, by reason; reasons that are neither the handler's nor the engine's as other.", "reason")
	c.dropped = desc(nameDropped, "Frames dropped for slow consumers under the SlowDrop policy.")
	c.paused = desc(namePaused, "Times a connection's reading paused because its output was backed up.")
	c.callsInFlight = desc(nameCallsInFlight, "Calls not yet answered: inbound, from peers, queued for or running in a handler; outbound, made by the server, waiting for their replies.", "direction")
	c.outbound = desc(nameOutbound, "Outbound bytes not yet taken by the kernel, all connections: queued sends, built frames, waiting requests and gnet's buffers.")
	c.outboundMax = desc(nameOutboundMax, "Outbound bytes not yet taken by the kernel on the connection with the most.")
	c.loops = desc(nameLoops, "Event loops that have had a connection.")
	c.loopQueue = desc(nameLoopQueue, "Tasks (sends, closes, calls) queued to the event loops and not yet taken, all loops.")
	c.loopQueueMax = desc(nameLoopQueueMax, "Tasks queued to the event loop with the most and not yet taken.")
	c.workerQueue = desc(nameWorkerQueue, "Connections waiting for a worker of the worker pool.")
	c.workerCallbacks = desc(nameWorkerCallbacks, "Callbacks queued on connections for the worker pool and not yet run.")
	c.tmo = desc(nameTimeouts, "Scrapes in which an event loop did not report within the scrape timeout; the outbound gauges and the outbound calls in flight are missing from those.")
	return c
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connsOpen, c.accepted, c.refused, c.disconnects, c.framesIn,
		c.framesOut, c.bytesIn, c.bytesOut, c.failSent, c.failRecv, c.dropped, c.paused, c.callsInFlight, c.outbound,
		c.outboundMax, c.loops, c.loopQueue, c.loopQueueMax, c.workerQueue, c.workerCallbacks, c.tmo} {
		ch <- d
	}
}

// Collect reads the server's counters and sends them. It waits up to the
// scrape timeout for the event loops.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.connsOpen, float64(st.Conns))
	counter(c.accepted, st.Accepted)
	for r, v := range st.Refused {
		counter(c.refused, v, string(r))
	}
	for r, v := range st.Disconnects {
		counter(c.disconnects, v, string(r))
	}
	// Every labelled opcode has a series, zero or not; "other" is the sum
	// of the rest, from the same reading as the totals, so it never
	// decreases.
	in, out := st.FramesIn, st.FramesOut
	for i, op := range c.opcodes {
		var f engine.OpcodeFrames
		if j, ok := slices.BinarySearchFunc(st.Opcodes, op, func(o engine.OpcodeFrames, op codec.Opcode) int {
			return int(o.Op) - int(op)
		}); ok {
			f = st.Opcodes[j]
		}
		counter(c.framesIn, f.In, c.opLabels[i])
		counter(c.framesOut, f.Out, c.opLabels[i])
		in, out = in-f.In, out-f.Out
	}
	counter(c.framesIn, in, other)
	counter(c.framesOut, out, other)
	counter(c.bytesIn, st.BytesIn)
	counter(c.bytesOut, st.BytesOut)
	for r, v := range st.FailuresSent {
		counter(c.failSent, v, r)
	}
	for r, v := range st.FailuresReceived {
		counter(c.failRecv, v, r)
	}
	counter(c.dropped, st.Dropped)
	counter(c.paused, st.Paused)
	gauge(c.callsInFlight, float64(st.CallsIn), inbound)
	gauge(c.loops, float64(st.Loops))
	gauge(c.loopQueue, float64(st.LoopQueue))
	gauge(c.loopQueueMax, float64(st.LoopQueueMax))
	gauge(c.workerQueue, float64(st.WorkerQueue))

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	b, err := c.srv.Host().Backlog(ctx)
	cancel()
	if err != nil {
		c.timeouts.Add(1)
	} else {
		gauge(c.callsInFlight, float64(b.CallsOut), outbound)
		gauge(c.outbound, float64(b.Bytes))
		gauge(c.outboundMax, float64(b.MaxBytes))
		gauge(c.workerCallbacks, float64(b.Callbacks))
	}
	counter(c.tmo, c.timeouts.Load())
}

// other labels what is not labelled one by one.
const other = "other"

// Outcomes of a call, the outcome label of the call-duration histogram.
const (
	outcomeOK       = iota // the call succeeded
	outcomeFailure         // a failure with a reason (the handler's, or the peer's)
	outcomeError           // an error without one: InternalError inbound, a local error outbound
	outcomePanic           // inbound: the handler panicked
	outcomeDeadline        // outbound: the call's context's deadline passed
	outcomeCanceled        // outbound: the call's context was cancelled
	outcomeClosed          // outbound: the connection closed first
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "failure", "error", "panic", "deadline", "canceled", "closed"}

// inboundOutcome classifies what a call handler returned.
func inboundOutcome(err error) int {
	if err == nil {
		return outcomeOK
	}
	if r := handler.ReasonOf(err); r != "" && r != handler.ReasonInternal {
		return outcomeFailure
	}
	return outcomeError
}

// outboundOutcome classifies how a call the server made ended.
func outboundOutcome(err error) int {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeDeadline
	case errors.Is(err, context.Canceled):
		return outcomeCanceled
	case handler.ReasonOf(err) != "":
		return outcomeFailure
	case errors.Is(err, engine.ErrClosed), errors.Is(err, engine.ErrServerClosed):
		return outcomeClosed
	}
	return outcomeError
}

// durations is the call-duration histogram, with its children looked up
// once per label set and kept, so that an observation takes no lock.
type durations struct {
	vec    *prometheus.HistogramVec
	index  [256]uint16 // application opcode -> label index; len(labels)-1 is other
	labels []string
	obs    []atomic.Pointer[prometheus.Observer] // [direction][label][outcome]
}

func newDurations(o *options) *durations {
	d := &durations{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: nameCallDuration,
		Help: "Time from a call's request to its outcome, by direction (inbound: from peers, in the handler; " +
			"outbound: made by the server, until the reply), called opcode (listed ones, the rest as other) and outcome.",
		Buckets:     o.buckets,
		ConstLabels: o.labels,
	}, []string{"direction", "opcode", "outcome"})}
	ops := slices.Clone(o.opcodes)
	slices.Sort(ops)
	ops = slices.Compact(ops)
	for i := range d.index {
		d.index[i] = uint16(len(ops))
	}
	for i, op := range ops {
		d.index[op] = uint16(i)
		d.labels = append(d.labels, strconv.Itoa(int(op)))
	}
	d.labels = append(d.labels, other)
	d.obs = make([]atomic.Pointer[prometheus.Observer], 2*len(d.labels)*numOutcomes)
	return d
}

func (d *durations) observe(dir int, op codec.Opcode, outcome int, seconds float64) {
	label := len(d.labels) - 1
	if op >= 0 && int(op) < len(d.index) {
		label = int(d.index[op])
	}
	slot := &d.obs[(dir*len(d.labels)+label)*numOutcomes+outcome]
	o := slot.Load()
	if o == nil {
		direction := inbound
		if dir == 1 {
			direction = outbound
		}
		h := d.vec.WithLabelValues(direction, d.labels[label], outcomeNames[outcome])
		o = &h
		slot.Store(o)
	}
	(*o).Observe(seconds)
}

// middleware times the calls peers make, in their handler: from the
// router's dispatch to the handler's return, the reply's encoding
// excluded.
func (d *durations) middleware() handler.Middleware {
	return handler.Middleware{Call: func(next handler.CallHandler) handler.CallHandler {
		return func(c handler.Conn, op codec.Opcode, data []byte) (any, error) {
			start := time.Now()
			returned := false
			defer func() {
				if !returned {
					d.observe(0, op, outcomePanic, time.Since(start).Seconds())
				}
			}()
			res, err := next(c, op, data)
			returned = true
			d.observe(0, op, inboundOutcome(err), time.Since(start).Seconds())
			return res, err
		}
	}}
}

// observeOutbound is the server's call observer.
func (d *durations) observeOutbound(op codec.Opcode, dur time.Duration, err error) {
	d.observe(1, op, outboundOutcome(err), dur.Seconds())
}
