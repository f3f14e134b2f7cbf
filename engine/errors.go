package engine

import (
	"errors"
	"fmt"
	"net"
)

var (
	// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown],
	// and by sends made once shutdown has begun.
	ErrServerClosed = errors.New("engine: server closed")
	// ErrClosed is returned by sends and calls on a closed connection or
	// client. It wraps net.ErrClosed: errors.Is(err, net.ErrClosed) holds.
	ErrClosed = fmt.Errorf("engine: connection closed: %w", net.ErrClosed)
	// ErrUnknownConn is returned when a net id names no open connection.
	ErrUnknownConn = errors.New("engine: unknown connection")
	// ErrInvalidOption wraps every invalid option value given to a
	// constructor; the message names the option.
	ErrInvalidOption = errors.New("engine: invalid option")
	// ErrOutboundFull is returned by a send that would put more than the
	// outbound limit in a connection's queue (see [WithMaxOutbound]).
	ErrOutboundFull = errors.New("engine: outbound queue full")
	// ErrCallOnLoop is returned by Call made from a callback running on the
	// event loop: the loop would wait for a reply only it can read. Use
	// CallAsync there.
	ErrCallOnLoop = errors.New("engine: Call from a callback on the event loop would deadlock")
	// ErrEngineStopped is returned by Serve when the event loop stopped on
	// its own, for example because accept failed with too many open files.
	ErrEngineStopped = errors.New("engine: event loop stopped unexpectedly")
)

// Reasons a connection closed, given to the disconnect callback. A peer that
// closes gives io.EOF; socket errors are passed as they come.
var (
	// ErrLocalClose: the connection was closed with Close.
	ErrLocalClose = errors.New("engine: closed locally")
	// ErrShutdown: the server or client was shut down.
	ErrShutdown = errors.New("engine: shut down")
	// ErrSizeOutOfBounds: the peer announced a message size outside the
	// configured bounds.
	ErrSizeOutOfBounds = errors.New("engine: peer announced a message size out of bounds")
	// ErrSlowConsumer: the peer did not read fast enough and its outbound
	// data passed the limit.
	ErrSlowConsumer = errors.New("engine: slow consumer")
	// ErrServerFull: the server was at its connection limit.
	ErrServerFull = errors.New("engine: server full")
	// ErrIdle: nothing was received within the idle timeout.
	ErrIdle = errors.New("engine: idle timeout")
	// ErrWriteDeadline: the peer took none of the connection's output
	// within the write deadline ([WithWriteDeadline]).
	ErrWriteDeadline = errors.New("engine: write deadline: the peer reads nothing")
	// ErrFrameDeadline: a partial frame did not complete within the frame
	// deadline ([WithFrameDeadline]).
	ErrFrameDeadline = errors.New("engine: frame deadline: a partial frame did not complete")
	// ErrRateLimited: the peer kept sending over its rate limit.
	ErrRateLimited = errors.New("engine: rate limit exceeded")
	// ErrInboundFull: the server held more unread input than
	// [WithMaxBuffered] allows, and this connection held the most; or the
	// connection held more than [WithMaxInbound] while its reading was
	// paused on its backed-up output.
	ErrInboundFull = errors.New("engine: inbound buffers full")
	// ErrGoAway: the connection was left after a go-away (-8): on a
	// client, the server said it was going away and the client closed the
	// connection once its calls were answered, to reconnect; on a server,
	// the peer answered the server's -8 with its own and left.
	ErrGoAway = errors.New("engine: left after a go-away (-8)")
	// ErrProtocol: the peer broke the framing (an unreadable first frame).
	ErrProtocol = errors.New("engine: protocol error")
)

// Failure reasons this package sends in -1 frames, beyond the handler's.
const (
	ReasonServerFull  = "ServerFull"
	ReasonRateLimited = "RateLimited"
	ReasonInvalidSize = "InvalidMessageSize"
	ReasonOverloaded  = "Overloaded"
	// ReasonAddressFull refuses a connection past the limit of its address
	// ([WithMaxConnsPerAddr]); one too soon after others from the same
	// address ([WithConnRatePerAddr]) gets ReasonRateLimited.
	ReasonAddressFull = "AddressFull"
)

func invalidOption(name string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidOption, name, fmt.Sprintf(format, args...))
}
