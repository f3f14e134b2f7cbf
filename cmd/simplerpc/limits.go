package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/spf13/pflag"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// The engine's defaults for the limits serve exposes (engine's godoc of
// each option). A test checks that serve --help prints them.
const (
	defaultWriteDeadline = 10 * time.Second // engine.WithWriteDeadline
	defaultFrameDeadline = 30 * time.Second // engine.WithFrameDeadline
	defaultMaxMalformed  = 16               // engine.WithMaxMalformed
	defaultRateStrikes   = 10               // engine.WithRateLimit's strikes
	maxMalformedLimit    = 4095             // the largest WithMaxMalformed takes
)

// fdMargin is the descriptors serve keeps for itself below RLIMIT_NOFILE,
// the engine's own margin (engine.WithMaxConns).
const fdMargin = 512

// limitOptions are serve's flags for the engine's per-connection limits.
type limitOptions struct {
	idleTimeout   time.Duration
	rateLimit     float64
	rateBurst     int
	rateStrikes   int
	maxOutbound   int
	maxInbound    int
	keepAlive     time.Duration
	writeDeadline time.Duration
	frameDeadline time.Duration
	maxMalformed  int
	maxBuffered   int  // both directions together; -1: the engine's default
	outboundSet   bool // --max-outbound was given

	maxPerIP   int
	ratePerIP  float64
	authToken  tokenSource
	authWithin time.Duration
}

// addLimitFlags adds the limit flags to f.
func addLimitFlags(f *pflag.FlagSet, o *limitOptions) {
	f.DurationVar(&o.idleTimeout, "idle-timeout", 0, "close a connection on which nothing arrived for this long (0: never)")
	f.Float64Var(&o.rateLimit, "rate-limit", 0, "inbound frames per second allowed per connection; frames over it get a RateLimited failure (0: no limit)")
	f.IntVar(&o.rateBurst, "rate-burst", 0, "burst of frames allowed over --rate-limit (0: one second's worth, --rate-limit rounded up)")
	f.IntVar(&o.rateStrikes, "rate-strikes", defaultRateStrikes, "close a connection after this many frames in a row over --rate-limit")
	f.IntVar(&o.maxOutbound, "max-outbound", defaultMaxOutbound, "bytes waiting to be written to one connection before it is closed as a slow consumer; "+
		"unless given, raised to 4 × --max-size when that is larger; past half of it the connection's reading pauses until its output drains")
	f.IntVar(&o.maxInbound, "max-inbound", defaultMaxInbound, "bytes one connection may hold unread while its reading is paused on its backed-up output, before it is closed (at least --max-size)")
	f.DurationVar(&o.keepAlive, "keepalive", 30*time.Second, "TCP keep-alive probes after this much silence (0: off)")
	f.DurationVar(&o.writeDeadline, "write-deadline", defaultWriteDeadline, "close a connection whose peer takes none of its output for this long (0: never)")
	f.DurationVar(&o.frameDeadline, "frame-deadline", defaultFrameDeadline, "close a connection whose partial frame does not complete within this time (0: never)")
	f.IntVar(&o.maxMalformed, "max-malformed", defaultMaxMalformed, fmt.Sprintf("close a connection after this many malformed frames in a row, or more than 1 in 16 frames over such a run (0: never; at most %d)", maxMalformedLimit))
	f.IntVar(&o.maxBuffered, "max-buffered", -1, "bytes all connections may hold together, half outbound and half inbound; past it those holding the most are closed "+
		"(-1: derived from GOMEMLIMIT, the cgroup's memory limit or the machine's memory, see the listening line; 0: no cap)")
	f.IntVar(&o.maxPerIP, "max-conns-per-ip", 0, "connections one remote IP address may hold; more get an AddressFull failure (0: no limit)")
	f.Float64Var(&o.ratePerIP, "conn-rate-per-ip", 0, "new connections per second one remote IP address may open, in bursts of that many rounded up (0: no limit)")
	addTokenFlags(f, &o.authToken, `require clients to send {"token": TOKEN} first (opcode -9), within --auth-timeout: the demo authenticator`)
	f.DurationVar(&o.authWithin, "auth-timeout", 10*time.Second, "how long a client has to send its credentials when a token is set")
}

// serverOptions checks the limit flags and returns the engine options they
// map to. maxSize is --max-size, which the outbound cap must hold.
func (o *limitOptions) serverOptions(maxSize int) ([]engine.ServerOption, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--idle-timeout", o.idleTimeout},
		{"--keepalive", o.keepAlive},
		{"--write-deadline", o.writeDeadline},
		{"--frame-deadline", o.frameDeadline},
	} {
		if d.v < 0 {
			return nil, usagef("%s %v must not be negative", d.name, d.v)
		}
	}
	switch {
	case o.rateLimit < 0 || math.IsNaN(o.rateLimit) || math.IsInf(o.rateLimit, 0):
		return nil, usagef("--rate-limit %v must be a finite number of frames per second, 0 for no limit", o.rateLimit)
	case o.rateBurst < 0:
		return nil, usagef("--rate-burst %d must not be negative", o.rateBurst)
	case o.rateStrikes < 1:
		return nil, usagef("--rate-strikes %d must be at least 1", o.rateStrikes)
	case o.rateLimit == 0 && o.rateBurst != 0:
		return nil, usagef("--rate-burst needs --rate-limit")
	case o.maxMalformed < 0 || o.maxMalformed > maxMalformedLimit:
		return nil, usagef("--max-malformed %d must lie within 0..%d", o.maxMalformed, maxMalformedLimit)
	}
	out := o.maxOutbound
	if !o.outboundSet {
		// Four of the largest frame keep a burst of echoes from tripping
		// the slow-consumer check.
		out = max(out, 4*maxSize)
	} else if out < maxSize {
		return nil, usagef("--max-outbound %d is less than the largest frame, --max-size %d", out, maxSize)
	}
	if o.maxInbound < maxSize {
		return nil, usagef("--max-inbound %d is less than the largest frame, --max-size %d", o.maxInbound, maxSize)
	}
	if o.maxBuffered < -1 {
		return nil, usagef("--max-buffered %d must not be negative (-1: derived, 0: no cap)", o.maxBuffered)
	}
	opts := []engine.ServerOption{
		engine.WithMaxInbound(o.maxInbound),
		engine.WithIdleTimeout(o.idleTimeout),
		engine.WithTCPKeepAlive(o.keepAlive),
		engine.WithWriteDeadline(o.writeDeadline),
		engine.WithFrameDeadline(o.frameDeadline),
		engine.WithMaxMalformed(o.maxMalformed),
		engine.WithMaxOutbound(out, engine.SlowClose),
	}
	if o.maxBuffered >= 0 {
		opts = append(opts, engine.WithMaxBuffered(o.maxBuffered/2, o.maxBuffered/2))
	}
	switch {
	case o.maxPerIP < 0:
		return nil, usagef("--max-conns-per-ip %d must not be negative", o.maxPerIP)
	case o.ratePerIP < 0 || math.IsNaN(o.ratePerIP) || math.IsInf(o.ratePerIP, 0):
		return nil, usagef("--conn-rate-per-ip %v must be a finite rate, 0 for no limit", o.ratePerIP)
	case o.authWithin <= 0:
		return nil, usagef("--auth-timeout %v must be positive", o.authWithin)
	}
	if o.maxPerIP > 0 {
		opts = append(opts, engine.WithMaxConnsPerAddr(o.maxPerIP))
	}
	if o.ratePerIP > 0 {
		opts = append(opts, engine.WithConnRatePerAddr(o.ratePerIP, max(1, int(math.Min(math.Ceil(o.ratePerIP), math.MaxInt32)))))
	}
	token, err := o.authToken.token()
	if err != nil {
		return nil, err
	}
	if token != "" {
		opts = append(opts, engine.WithAuth(tokenAuthenticator(token), o.authWithin))
	}
	if o.rateLimit > 0 {
		burst := o.rateBurst
		if burst == 0 {
			burst = max(1, int(math.Min(math.Ceil(o.rateLimit), math.MaxInt32)))
		}
		opts = append(opts, engine.WithRateLimit(o.rateLimit, burst, o.rateStrikes))
	}
	return opts, nil
}

// clampMaxConns returns the connection cap to use for --max-conns n with a
// descriptor limit of soft (0: unknown): n itself, or the limit less
// fdMargin when n is above it, which the log then says. 0 is the engine's
// default, that same bound.
func clampMaxConns(log *slog.Logger, n int, soft uint64) int {
	if n == 0 || soft == 0 || soft > math.MaxInt32 {
		return n
	}
	room := int(soft) - fdMargin
	if room < 1 {
		room = 1
	}
	if n <= room {
		return n
	}
	log.Warn("--max-conns is above the file-descriptor limit; clamped",
		"max_conns", n, "clamped_to", room, "rlimit_nofile", soft, "margin", fdMargin)
	return room
}

// tokenAuthenticator is serve's demo authenticator: a client whose
// credentials are {"token": TOKEN} authenticates as "token".
func tokenAuthenticator(token string) engine.Authenticator {
	return func(_ context.Context, _ handler.Conn, creds []byte) (string, error) {
		var m struct {
			Token string `json:"token"`
		}
		if codec.Unmarshal(creds, &m) != nil || subtle.ConstantTimeCompare([]byte(m.Token), []byte(token)) != 1 {
			return "", &handler.Error{Reason: engine.ReasonUnauthorized, Message: "wrong token"}
		}
		return "token", nil
	}
}
