// This file holds the configuration every option writes: its fields, their
// defaults and their validation, run by NewServer, NewDialer and Dial.

package engine

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

// config holds every option; server-only and client-only fields say so.
type config struct {
	size        int // server: frame size announced
	minSize     int
	maxSize     int
	boundsSet   bool // WithSizeBounds was given
	loops       int
	logger      *slog.Logger
	noDelay     bool
	keepAlive   time.Duration
	workers     int
	workerQueue int

	onConnect    func(handler.Conn)
	onDisconnect func(handler.Conn, error)
	tap          func(handler.Conn, codec.Opcode, []byte)

	maxConns      int // server
	maxOutbound   int
	maxInbound    int
	slowPolicy    SlowPolicy
	maxPerWake    int
	rateLimit     float64
	rateBurst     int
	rateStrikes   int
	maxMalformed  int
	idleTimeout   time.Duration
	writeDeadline time.Duration // server
	frameDeadline time.Duration // server
	pingInterval  time.Duration // client
	pingTimeout   time.Duration // client

	dialTimeout time.Duration // client
	reconnect   bool          // client
	retryDial   bool          // client: retry the first dial
	dialNoWait  bool          // client: Dial returns once connected, before ready
	backoffMin  time.Duration
	backoffMax  time.Duration
	onReconnect func(handler.Conn)
	maxHeld     int // client: bytes held while the size is unknown or disconnected

	grace      time.Duration // server: how long a shutdown by Start's context waits
	backend    Backend       // server: WithBackend, or nil for a server alone
	backendSet bool          // WithBackend was given (nil is refused)

	handSave    func(handler.Conn) ([]byte, error) // server: WithHandover
	handRestore func(handler.Conn, []byte) error

	auth          Authenticator // server: nil when no authentication is needed
	authTimeout   time.Duration
	authFailBurst int           // server: failures per address (WithAuthFailureLimit), 0 for no limit
	authFailEvery time.Duration // server: one failure given back each
	credentials   any           // client: sent first on every connection
	localAddr     string        // client: the source IP address, or ""

	maxOutTotal  int    // server: bytes of output held by all connections
	maxInTotal   int    // server: bytes of input held by all connections
	bufferedSet  bool   // WithMaxBuffered was given
	bufferedFrom string // where maxOutTotal and maxInTotal came from (memlimit.go)

	maxPerAddr   int     // server: connections per remote address
	ratePerAddr  float64 // server: new connections per second per address
	burstPerAddr int
	newLayer     func(*conn) layer // the transport layer of every connection, or nil for plain TCP

	useTLS           bool        // WithTLS was given
	tlsConfig        *tls.Config // WithTLS: the caller's config, cloned
	handshakeTimeout time.Duration
	maxHandshakes    int
	tls              *tlsSide // built by validate when tlsConfig is set

	ws wsConfig // server: WithWebSocket, for the WebSocket listeners
}

func defaultConfig() config {
	return config{
		size:         codec.DefaultMessageSize,
		minSize:      codec.MinMessageSize,
		maxSize:      64 << 10,
		loops:        1,
		noDelay:      true,
		workerQueue:  1024,
		maxOutbound:  4 << 20,
		maxInbound:   16 << 20,
		maxPerWake:   1024,
		rateStrikes:  10,
		maxMalformed: 16,
		pingTimeout:  0,
		keepAlive:    30 * time.Second,
		dialTimeout:  10 * time.Second,
		backoffMin:   100 * time.Millisecond,
		backoffMax:   10 * time.Second,
		maxHeld:      1 << 20,
		grace:        5 * time.Second,

		authFailBurst: 10,
		authFailEvery: time.Second,

		writeDeadline: 10 * time.Second,
		frameDeadline: 30 * time.Second,

		handshakeTimeout: 10 * time.Second,
		maxHandshakes:    1024,
	}
}

func (c *config) validate(server bool) error {
	if c.minSize < codec.MinMessageSize || c.maxSize > codec.MaxMessageSize || c.minSize > c.maxSize {
		return invalidOption("WithSizeBounds", "[%d, %d] must lie within [%d, %d]",
			c.minSize, c.maxSize, codec.MinMessageSize, codec.MaxMessageSize)
	}
	if server && !c.boundsSet {
		// A server's bounds are its own: unless told otherwise, a peer may
		// not announce a frame larger than the server's, and so pin more
		// buffer per partial frame than the server chose.
		c.maxSize = max(c.size, c.minSize)
	}
	if server && (c.size < c.minSize || c.size > c.maxSize) {
		return invalidOption("WithMessageSize", "%d is outside the bounds [%d, %d]", c.size, c.minSize, c.maxSize)
	}
	switch {
	case server && c.backendSet && c.backend == nil:
		return invalidOption("WithBackend", "nil")
	case c.loops < 1 || c.loops > 256:
		return invalidOption("WithEventLoops", "%d (want 1..256)", c.loops)
	case c.workers < 0:
		return invalidOption("WithWorkerPool", "%d workers", c.workers)
	case c.workerQueue < 1:
		return invalidOption("WithWorkerPool", "queue %d", c.workerQueue)
	case c.maxConns < 0:
		return invalidOption("WithMaxConns", "%d", c.maxConns)
	case c.maxOutbound < c.maxSize:
		return invalidOption("WithMaxOutbound", "%d bytes is less than the largest frame (%d)", c.maxOutbound, c.maxSize)
	case c.maxInbound < c.maxSize:
		return invalidOption("WithMaxInbound", "%d bytes is less than the largest frame (%d)", c.maxInbound, c.maxSize)
	case c.maxPerWake < 1:
		return invalidOption("WithMaxFramesPerWake", "%d", c.maxPerWake)
	case c.maxMalformed < 0 || c.maxMalformed > maxMalformedLimit:
		return invalidOption("WithMaxMalformed", "%d (want 0..%d)", c.maxMalformed, maxMalformedLimit)
	case c.rateLimit < 0 || c.rateLimit > 0 && c.rateBurst < 1:
		return invalidOption("WithRateLimit", "%v/s burst %d", c.rateLimit, c.rateBurst)
	case c.idleTimeout < 0:
		return invalidOption("WithIdleTimeout", "%v", c.idleTimeout)
	case c.writeDeadline < 0:
		return invalidOption("WithWriteDeadline", "%v", c.writeDeadline)
	case c.frameDeadline < 0:
		return invalidOption("WithFrameDeadline", "%v", c.frameDeadline)
	case c.pingInterval < 0 || c.pingTimeout < 0:
		return invalidOption("WithHeartbeat", "%v/%v", c.pingInterval, c.pingTimeout)
	case c.backoffMin <= 0 || c.backoffMax < c.backoffMin:
		return invalidOption("WithReconnect", "backoff %v..%v", c.backoffMin, c.backoffMax)
	case c.maxHeld < 0:
		return invalidOption("WithMaxHeld", "%d", c.maxHeld)
	case c.auth != nil && c.authTimeout <= 0:
		return invalidOption("WithAuth", "timeout %v", c.authTimeout)
	case c.authFailBurst < 0 || c.authFailBurst > 0 && c.authFailEvery <= 0:
		return invalidOption("WithAuthFailureLimit", "%d failures, one back every %v", c.authFailBurst, c.authFailEvery)
	case c.maxOutTotal < 0 || c.maxInTotal < 0:
		return invalidOption("WithMaxBuffered", "%d out, %d in", c.maxOutTotal, c.maxInTotal)
	case c.maxPerAddr < 0:
		return invalidOption("WithMaxConnsPerAddr", "%d", c.maxPerAddr)
	case c.ratePerAddr < 0 || c.ratePerAddr > 0 && c.burstPerAddr < 1:
		return invalidOption("WithConnRatePerAddr", "%v/s burst %d", c.ratePerAddr, c.burstPerAddr)
	case c.grace < 0:
		return invalidOption("WithGracePeriod", "%v", c.grace)
	}
	if c.credentials != nil {
		if _, err := codec.Marshal(c.credentials); err != nil { // an object, as the -9 frame needs
			return invalidOption("WithCredentials", "%v", err)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c.setupTLS(server)
}
