// Package servers holds the servers the benchmarks compare. Each serves
// the same fixed-size frames: it sends the -2 frame first, echoes opcode
// 0, and sends opcode 1 to every connection. The simplerpc and net/rpc
// servers also answer calls.
//
//   - simplerpc: the library, opcode-0 echo through the handler table;
//   - rawgnet: gnet echoing whole frames without parsing them, everything
//     one read produced in one Write: the ceiling for anything on gnet;
//   - netnaive: a goroutine per connection, one read and one Write per
//     frame, doing the same JSON work as simplerpc with its codec;
//   - netcareful: the same with a bufio reader and writer, flushing when no
//     complete frame is buffered;
//   - netrpc: net/rpc with its jsonrpc codec (calls only, no frames);
//   - simplerpc-tls, nettls: simplerpc with engine.WithTLS, and netcareful
//     on a crypto/tls listener;
//   - simplerpc-ws, netws: simplerpc on a ws:// address, and a goroutine
//     per connection on gorilla/websocket doing netcareful's codec work
//     (echo only).
package servers

import (
	"fmt"
	"slices"
	"strings"

	"github.com/simplerpc/simplerpc/engine"
)

// Impls lists the implementations Start knows.
var Impls = []string{"simplerpc", "rawgnet", "netnaive", "netcareful", "netrpc",
	"simplerpc-tls", "nettls", "simplerpc-ws", "netws"}

// Transport is what a server speaks under its frames.
type Transport int

// The transports.
const (
	// TCP is plain TCP: the frames are the stream.
	TCP Transport = iota
	// TLS is TLS over TCP (crypto/tls, TLS 1.3 with Go peers).
	TLS
	// WebSocket is RFC 6455 over TCP, upgraded at wire.WSPath: one frame per
	// message.
	WebSocket
)

// TransportOf returns the transport of impl.
func TransportOf(impl string) Transport {
	switch {
	case impl == "nettls" || strings.HasSuffix(impl, "-tls"):
		return TLS
	case impl == "netws" || strings.HasSuffix(impl, "-ws"):
		return WebSocket
	}
	return TCP
}

// String returns "tcp", "tls" or "ws".
func (t Transport) String() string {
	switch t {
	case TLS:
		return "tls"
	case WebSocket:
		return "ws"
	}
	return "tcp"
}

// Config is what every server is started with.
type Config struct {
	// Size is the frame size, announced in the -2 frame.
	Size int
	// Loops is the number of event loops of the gnet servers (default 1).
	Loops int
	// Instrument, if set, is called with the simplerpc server before it
	// starts (benchserver -metrics registers its metrics there). The other
	// implementations ignore it.
	Instrument func(*engine.Server) error
}

// Server is a running comparison server.
type Server interface {
	// Addr returns the address it listens on.
	Addr() string
	// Close stops it and closes its connections.
	Close() error
}

// Start starts the named implementation on addr ("127.0.0.1:0").
func Start(impl, addr string, cfg Config) (Server, error) {
	if cfg.Loops < 1 {
		cfg.Loops = 1
	}
	switch impl {
	case "simplerpc", "simplerpc-tls", "simplerpc-ws":
		return startSimpleRPC(addr, cfg, TransportOf(impl))
	case "rawgnet":
		return startRawGnet(addr, cfg)
	case "netnaive":
		return startNet(addr, cfg, false, false)
	case "netcareful":
		return startNet(addr, cfg, true, false)
	case "nettls":
		return startNet(addr, cfg, true, true)
	case "netws":
		return startNetWS(addr, cfg)
	case "netrpc":
		return startNetRPC(addr)
	}
	return nil, fmt.Errorf("servers: unknown implementation %q (want one of %v)", impl, Impls)
}

// Frames reports whether impl speaks simplerpc frames on plain TCP (all
// of those but netrpc).
func Frames(impl string) bool {
	return impl != "netrpc" && TransportOf(impl) == TCP && slices.Contains(Impls, impl)
}
