// This file holds the options of servers and clients: each sets fields of
// the configuration (config.go), which checks them at construction.

package engine

import (
	"log/slog"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// ServerOption configures a [Server].
type ServerOption interface{ applyServer(*config) }

// ClientOption configures a [Client].
type ClientOption interface{ applyClient(*config) }

// Option configures both a [Server] and a [Client].
type Option interface {
	ServerOption
	ClientOption
}

type sharedOption func(*config)

func (o sharedOption) applyServer(c *config) { o(c) }
func (o sharedOption) applyClient(c *config) { o(c) }

type serverOption func(*config)

func (o serverOption) applyServer(c *config) { o(c) }

type clientOption func(*config)

func (o clientOption) applyClient(c *config) { o(c) }

// DialOption configures one client of a [Dialer], given to [Dialer.Dial]:
// what differs between the connections of one dialer, such as their
// credentials. Each is also a [ClientOption], which sets it for every
// client of a dialer; one given to Dial takes precedence.
type DialOption interface {
	ClientOption
	applyDial(*dialConfig)
}

// dialConfig is what a DialOption sets for one client.
type dialConfig struct {
	credentials any
	local       string // source IP address, "" for the system's choice
}

// dialOption is a DialOption from its two halves.
type dialOption struct {
	client func(*config)
	dial   func(*dialConfig)
}

func (o dialOption) applyClient(c *config)   { o.client(c) }
func (o dialOption) applyDial(d *dialConfig) { o.dial(d) }

// WithLocalAddr makes a client connect from the local IP address ip
// ("" lets the system choose, the default). A load generator spreads its
// connections over several loopback sources (127.0.0.2, 127.0.0.3, ...)
// to get past the ephemeral port range of one source address.
func WithLocalAddr(ip string) DialOption {
	return dialOption{client: func(c *config) { c.localAddr = ip }, dial: func(d *dialConfig) { d.local = ip }}
}

// SlowPolicy says what happens to a connection whose outbound data passes
// the limit set by [WithMaxOutbound].
type SlowPolicy int

const (
	// SlowClose closes the connection; the disconnect reason is
	// [ErrSlowConsumer]. The default.
	SlowClose SlowPolicy = iota
	// SlowDrop drops the frames that do not fit and counts them (see
	// [Server.Stats]); the connection stays open.
	SlowDrop
)

// WithMessageSize sets the frame size the server announces to every client
// and uses for its own frames, in bytes. Defaults to 1024, the original's
// size. It must lie within the bounds of [WithSizeBounds].
func WithMessageSize(n int) ServerOption {
	return serverOption(func(c *config) { c.size = n })
}

// WithSizeBounds sets the smallest and largest frame size a peer may
// announce with a -2 frame; outside them the peer gets a failure frame and
// is closed. For a server the largest defaults to its own message size
// ([WithMessageSize]): a larger frame lets each peer pin that much buffer
// with a partial frame, so a server allows it only when told. For a client
// the bounds default to [64, 64 KiB], the sizes it accepts from a server.
// Both must lie within [codec.MinMessageSize, codec.MaxMessageSize]. A size
// the server itself chose for a connection ([Server.SetMessageSize]) is
// accepted back from that peer whatever the bounds.
func WithSizeBounds(min, max int) Option {
	return sharedOption(func(c *config) { c.minSize, c.maxSize, c.boundsSet = min, max, true })
}

// WithEventLoops sets the number of gnet event loops. Defaults to 1, one
// reactor. With more than one, callbacks of different connections run in
// parallel: state they share must be synchronised.
func WithEventLoops(n int) Option {
	return sharedOption(func(c *config) { c.loops = n })
}

// WithLogger sets the structured logger for connection events and errors
// that have no caller to return to. Defaults to none: the engine is silent.
func WithLogger(l *slog.Logger) Option {
	return sharedOption(func(c *config) { c.logger = l })
}

// WithTCPNoDelay sets TCP_NODELAY on connections. Defaults to true: frames
// are small and latency matters more than packet count.
func WithTCPNoDelay(on bool) Option {
	return sharedOption(func(c *config) { c.noDelay = on })
}

// WithTCPKeepAlive makes the kernel probe a TCP connection after d of
// silence, so that a peer that vanished (a dead host, a dropped NAT
// entry) is found even when the protocol is quiet. Defaults to 30s; zero
// turns keep-alive off. See [WithIdleTimeout] and [WithHeartbeat] for
// liveness the protocol itself can see.
func WithTCPKeepAlive(d time.Duration) Option {
	return sharedOption(func(c *config) { c.keepAlive = d })
}

// WithWorkerPool runs callbacks on n worker goroutines instead of the event
// loop, so they may block. Each connection's frames and its connect and
// disconnect callbacks still run one at a time, in order. queue bounds the
// frames waiting per connection; past it, frames are answered with a
// failure whose reason is "Overloaded". Defaults to 0 workers: callbacks run
// on the event loop and must not block.
func WithWorkerPool(n, queue int) Option {
	return sharedOption(func(c *config) { c.workers, c.workerQueue = n, queue })
}

// WithOnConnect sets the callback run when a connection is ready: for a
// server, right after the -2 frame is sent; for a client, once the message
// size is known. It runs in order with the connection's frames.
func WithOnConnect(fn func(c handler.Conn)) Option {
	return sharedOption(func(c *config) { c.onConnect = fn })
}

// WithOnDisconnect sets the callback run once when a connection closes,
// with the reason (io.EOF when the peer closed, [ErrLocalClose],
// [ErrShutdown], [ErrSlowConsumer], ...). Sends on c fail from then on.
func WithOnDisconnect(fn func(c handler.Conn, reason error)) Option {
	return sharedOption(func(c *config) { c.onDisconnect = fn })
}

// WithMaxConns caps the open connections. A connection past the cap gets a
// failure frame with reason "ServerFull" and is closed. Defaults to the
// process's file-descriptor limit less 512, so that peers past what the
// process can hold are told so at once; running out of descriptors anyway
// does not stop the server, whose acceptor backs off and tries again.
// Zero means the default.
func WithMaxConns(n int) ServerOption {
	return serverOption(func(c *config) { c.maxConns = n })
}

// WithMaxOutbound caps the bytes waiting to be written to one connection,
// its outbound credit: queued by sends plus built and buffered, not yet
// taken by the kernel. Past the cap the [SlowPolicy] applies. Calls'
// requests wait for the credit instead: one is written only while the
// output stays within a quarter of the cap, so the policy never applies
// to them; meanwhile a Call waits (within its context), and a CallAsync
// fails with [ErrOutboundFull] once the requests waiting pass the cap.
// Defaults to 4 MiB; it must be at least the largest frame size.
//
// Over half of the cap built for the peer, the connection's reading pauses
// (its frames wait, unread) until the output has drained to a quarter: a
// peer that sends a burst of requests and reads the replies is slowed,
// not closed; one that stops reading is closed by [WithWriteDeadline] or
// [WithMaxInbound].
func WithMaxOutbound(bytes int, policy SlowPolicy) Option {
	return sharedOption(func(c *config) { c.maxOutbound, c.slowPolicy = bytes, policy })
}

// WithMaxInbound caps the bytes one connection may hold read from its
// socket and not yet handled, while its reading is paused on its backed-up
// output (see [WithMaxOutbound]): gnet cannot stop reading a socket, so
// what such a peer goes on sending waits in memory. Past the cap the
// connection closes with [ErrInboundFull]. Defaults to 16 MiB; it must be
// at least the largest frame size. [WithMaxBuffered] caps what all the
// connections hold together.
func WithMaxInbound(bytes int) Option {
	return sharedOption(func(c *config) { c.maxInbound = bytes })
}

// WithMaxFramesPerWake caps the frames handled for one connection each
// time the loop reads it, so one busy peer cannot starve the others on its
// loop; the rest are handled on the next turn. Defaults to 1024.
func WithMaxFramesPerWake(n int) Option {
	return sharedOption(func(c *config) { c.maxPerWake = n })
}

// WithRateLimit limits each connection to perSecond inbound frames with
// bursts of burst. A frame over the limit is answered with a failure whose
// reason is "RateLimited" and is not dispatched; after strikes such frames
// in a row the connection is closed with [ErrRateLimited]. Defaults to no
// limit.
func WithRateLimit(perSecond float64, burst, strikes int) Option {
	return sharedOption(func(c *config) { c.rateLimit, c.rateBurst, c.rateStrikes = perSecond, burst, strikes })
}

// WithMaxMalformed closes a connection with [ErrProtocol] after n
// malformed frames in a row, each answered with a MalformedPayload
// failure: a peer out of step, or hostile, does not get an answer per
// frame for good. Well-formed frames between them pay the count back
// slowly, one sixteenth of a malformed frame each, so a peer that sends
// more than one malformed frame in 16 is closed too, however it
// interleaves them; one that makes a rare mistake never is. Defaults to
// 16; zero never closes for it; at most 4095.
func WithMaxMalformed(n int) Option {
	return sharedOption(func(c *config) { c.maxMalformed = n })
}

// WithIdleTimeout closes a connection on which nothing arrived for d, with
// [ErrIdle]. Pings count as traffic. Defaults to 0, no timeout. It is a
// server option: a client detects a dead server with [WithHeartbeat].
func WithIdleTimeout(d time.Duration) ServerOption {
	return serverOption(func(c *config) { c.idleTimeout = d })
}

// WithWriteDeadline closes a connection whose peer takes none of its
// output for d while output waits, with [ErrWriteDeadline], whatever the
// backlog: a peer that stopped reading cannot hold its buffers for good,
// nor keep itself open by pinging. A peer that reads, however slowly, is
// the outbound cap's concern ([WithMaxOutbound]). It is checked a few
// times per d, so a connection closes between d and about 1.25 d. Defaults
// to 10s; zero turns it off.
func WithWriteDeadline(d time.Duration) ServerOption {
	return serverOption(func(c *config) { c.writeDeadline = d })
}

// WithFrameDeadline closes a connection whose partial frame does not
// complete within d, with [ErrFrameDeadline]: a peer that sends half a
// frame, or drips one a byte at a time, cannot pin its buffer for good.
// The time starts when a partial frame is left after a read, again after
// each frame that completes. Checked as [WithWriteDeadline] is. Defaults
// to 30s; zero turns it off.
func WithFrameDeadline(d time.Duration) ServerOption {
	return serverOption(func(c *config) { c.frameDeadline = d })
}

// WithHeartbeat makes the client send a ping (opcode -6, see
// docs/PROTOCOL.md) every interval and close the connection with [ErrIdle]
// when no frame at all arrived for timeout. The server answers pings
// whatever its options. Defaults to off.
func WithHeartbeat(interval, timeout time.Duration) ClientOption {
	return clientOption(func(c *config) { c.pingInterval, c.pingTimeout = interval, timeout })
}

// WithDialTimeout bounds each connection attempt, on top of the context's
// deadline. Defaults to 10s.
func WithDialTimeout(d time.Duration) ClientOption {
	return clientOption(func(c *config) { c.dialTimeout = d })
}

// WithReconnect makes the client reconnect after it loses its connection
// (not after Close), waiting between attempts with exponential backoff from
// min to max and full jitter. Frames sent while disconnected are held up
// to the limit of [WithMaxHeld] and sent once reconnected; past it, sends
// fail with [ErrOutboundFull]. Calls in flight when the connection drops
// fail with [ErrClosed]. Defaults to off.
//
// onReconnect, if not nil, restores the session after each reconnection
// (re-authenticate, re-join rooms) before anything held is sent: it runs
// on a goroutine of its own once the new connection knows its size, and
// what it sends or calls through the connection it gets goes out first;
// the frames held while disconnected, and whatever the client is asked to
// send meanwhile, follow once it returns, and then the connect callback
// runs. It may block (a Call to log in again), within the connection's
// life: if the connection drops, its calls fail and the next attempt
// begins.
func WithReconnect(min, max time.Duration, onReconnect func(c handler.Conn)) ClientOption {
	return clientOption(func(c *config) {
		c.reconnect, c.backoffMin, c.backoffMax, c.onReconnect = true, min, max, onReconnect
	})
}

// WithRetryFirstDial makes [Dial] and [Dialer.Dial] retry a first
// connection that fails, with the backoff of [WithReconnect] (or its
// defaults, 100ms to 10s), until one succeeds or the dial's context ends: a
// client may start before its server. Defaults to off: a failed first dial
// returns its error.
func WithRetryFirstDial() ClientOption {
	return clientOption(func(c *config) { c.retryDial = true })
}

// WithDialNoWait makes [Dial] and [Dialer.Dial] return once the
// connection is up (and a WebSocket upgrade accepted), without waiting
// for the server's message size and the acknowledgement of the
// credentials: frames sent meanwhile are held, [Client.Ready] tells when
// the size is known, and a refusal ends the client ([Client.Err]).
// Defaults to off: Dial returns a ready client or the reason it is not.
func WithDialNoWait() ClientOption {
	return clientOption(func(c *config) { c.dialNoWait = true })
}

// WithMaxHeld bounds the bytes of frames a client holds while it does not
// know the message size yet, or is reconnecting. Defaults to 1 MiB.
func WithMaxHeld(bytes int) ClientOption {
	return clientOption(func(c *config) { c.maxHeld = bytes })
}

// WithTap sets a function that sees every well-formed frame received,
// protocol frames included, before the engine acts on it: for tracing and
// tools such as `simplerpc listen --all`. It runs on the event loop; data is
// borrowed and valid only during the call. Defaults to none.
func WithTap(fn func(c handler.Conn, op codec.Opcode, data []byte)) Option {
	return sharedOption(func(c *config) { c.tap = fn })
}

// WithGracePeriod sets how long the graceful shutdown that follows the end
// of the context given to [Server.Start] or [Server.Serve] waits for queued
// frames to go out before it closes what is left. [Server.Shutdown] takes
// its own context instead. Defaults to 5s; zero closes at once.
func WithGracePeriod(d time.Duration) ServerOption {
	return serverOption(func(c *config) { c.grace = d })
}

// WithBackend makes the server one of a cluster's: b carries what it
// sends, calls and looks up beyond its own connections to the other
// servers (see [Backend]; the module github.com/simplerpc/simplerpc/cluster
// implements it over NATS), and gives each new connection its net id.
// NewServer attaches b to the server's [Host]; starting the server starts
// b, and its shutdown stops b. A server takes one backend, and a backend
// serves one server. nil is refused. Defaults to none: a server alone,
// whose methods reach its own connections only and which makes no backend
// call.
func WithBackend(b Backend) ServerOption {
	return serverOption(func(c *config) { c.backend, c.backendSet = b, true })
}

// WithMaxConnsPerAddr caps the connections one remote IP address may hold
// at n: one more gets a failure frame with reason "AddressFull" and is
// closed, before it reaches an event loop. Unix-socket peers are not
// limited. Defaults to 0, no limit.
func WithMaxConnsPerAddr(n int) ServerOption {
	return serverOption(func(c *config) { c.maxPerAddr = n })
}

// WithConnRatePerAddr limits how fast one remote IP address may open
// connections: perSecond on average, in bursts of burst. A connection over
// the limit gets a failure frame with reason "RateLimited" and is closed,
// before it reaches an event loop. Defaults to no limit.
func WithConnRatePerAddr(perSecond float64, burst int) ServerOption {
	return serverOption(func(c *config) { c.ratePerAddr, c.burstPerAddr = perSecond, burst })
}

// WithMaxBuffered caps the bytes the server holds for all its
// connections together: outbound (queued, built and in gnet's buffers)
// and inbound (read and not yet handled: partial frames, frames waiting
// their turn). The per-connection caps ([WithMaxOutbound], the frame size)
// bound one peer; these bound many, which together could exhaust memory
// while each stays under its own cap. Past a cap, the connections holding
// the most are closed first (largest backlog first), with
// [ErrSlowConsumer] or [ErrInboundFull], until the server is under it.
// Each cap is split evenly among the event loops; the inbound one is kept
// as soon as a paused peer's input grows, the outbound one every 20 ms
// while a peer is backed up, and both every second.
//
// Defaults to caps derived from the memory the process may use: a quarter
// of GOMEMLIMIT if it is set, else of the cgroup's memory limit, else a
// sixteenth of the machine's memory, half of it each way (on 256 MiB, 32 MiB
// outbound and 32 MiB inbound). Bytes in buffers cost up to about four
// times their count in a process's memory (buffers that grow by doubling,
// the garbage collector's headroom), so a server flooded by peers that
// never read stays within its limit. [Server.MaxBuffered] tells the caps
// in force and where they came from. Zero turns a cap off.
func WithMaxBuffered(outbound, inbound int) ServerOption {
	return serverOption(func(c *config) { c.maxOutTotal, c.maxInTotal, c.bufferedSet = outbound, inbound, true })
}

// WithAuth makes the server require authentication: a connection gets
// its -2 frame, then must send its credentials in a -9 frame within
// timeout (docs/PROTOCOL.md §6.2); until fn accepts them, every other frame
// is answered with an Unauthorized failure and not dispatched, and the
// connection is neither in the server's registry nor reached by sends to
// all; its connect callback runs once it is authenticated. A refusal or a
// deadline passed gets the failure, then a close with [ErrUnauthorized].
// Frames that follow the -9 frame wait for the verdict, in order. Defaults
// to none; timeout must be positive.
func WithAuth(fn Authenticator, timeout time.Duration) ServerOption {
	return serverOption(func(c *config) { c.auth, c.authTimeout = fn, timeout })
}

// WithCredentials makes a client send v (which must encode as a JSON
// object) in a -9 frame as the first frame of every connection, before
// anything held or sent meanwhile, for a server that requires it
// ([WithAuth]). Given to [Dialer.Dial], it is that client's own: many
// clients of one dialer may each log in as someone else. Defaults to none.
func WithCredentials(v any) DialOption {
	return dialOption{client: func(c *config) { c.credentials = v }, dial: func(d *dialConfig) { d.credentials = v }}
}

// WithAuthFailureLimit limits the authentication failures of each remote
// address ([WithAuth]): an address may fail n authentications, and gets
// one more each `every`; past that, the credentials it sends are refused
// with Unauthorized ("Too many failed authentications from your
// address") without the authenticator running, until its budget refills.
// An authentication that succeeds gives its attempt back, so clients that
// present good credentials never spend it. Defaults to 10 failures and one
// more a second; n 0 turns the limit off. Unix-socket peers have no
// address and are not limited; peers behind one NAT address share its
// budget. Why a budget and not a delay: docs/OPERATIONS.md.
func WithAuthFailureLimit(n int, every time.Duration) ServerOption {
	return serverOption(func(c *config) { c.authFailBurst, c.authFailEvery = n, every })
}

// WithHandover gives a server the hooks that carry the application's
// per-connection state across a handover ([Server.HandOver],
// [Server.Adopt]): save runs on the old server, on the connection's loop,
// just before the connection leaves, and returns the bytes to carry (its
// value, its handler.Store entries, as the application encodes them);
// restore runs on the successor, on the new loop, before any frame of the
// connection is read, with those bytes. A save error keeps the connection
// on the old server, which tells it to go away (-8) instead; a restore
// error closes it. Both must be quick: they run on an event loop. Defaults
// to none: the application's state is not carried.
func WithHandover(save func(c handler.Conn) ([]byte, error), restore func(c handler.Conn, state []byte) error) ServerOption {
	return serverOption(func(c *config) { c.handSave, c.handRestore = save, restore })
}
