// This file holds the one vocabulary of why connections end: every error
// the package exports, in one table, with the disconnect class it counts
// under (Stats.Disconnects, DisconnectReasonOf, the metrics' reason label)
// and the refuse class it counts under when it refuses a connection
// (Stats.Refused). TestErrorClasses fails when an exported Err* is missing.

package engine

import (
	"errors"
	"io"
)

// DisconnectReason is the class of why a connection closed: the reason
// the disconnect callback receives, mapped by [DisconnectReasonOf] into a
// small fixed set that can label a metric.
type DisconnectReason string

// Classes of disconnect reasons, each with the errors it counts.
const (
	// DisconnectEOF: the peer closed the connection (io.EOF).
	DisconnectEOF DisconnectReason = "eof"
	// DisconnectIdle: nothing, or no complete frame, came in time
	// ([ErrIdle], [ErrFrameDeadline]).
	DisconnectIdle DisconnectReason = "idle"
	// DisconnectSlowConsumer: the peer did not read its outbound data
	// fast enough ([ErrSlowConsumer], [ErrWriteDeadline],
	// [ErrOutboundFull]).
	DisconnectSlowConsumer DisconnectReason = "slow_consumer"
	// DisconnectRateLimit: the peer kept sending over its rate limit
	// ([ErrRateLimited]).
	DisconnectRateLimit DisconnectReason = "rate_limit"
	// DisconnectInboundFull: the server held more of the peer's unread
	// input than it allows ([ErrInboundFull]).
	DisconnectInboundFull DisconnectReason = "inbound_full"
	// DisconnectShutdown: the server or dialer shut down ([ErrShutdown],
	// [ErrServerClosed]).
	DisconnectShutdown DisconnectReason = "shutdown"
	// DisconnectLocal: the application closed the connection
	// ([ErrLocalClose]).
	DisconnectLocal DisconnectReason = "local_close"
	// DisconnectHandedOver: the connection moved to a successor
	// ([ErrHandedOver], [Server.HandOver]); its peer saw nothing.
	DisconnectHandedOver DisconnectReason = "handed_over"
	// DisconnectGoAway: the server said it was going away and the client
	// left it to reconnect ([ErrGoAway]).
	DisconnectGoAway DisconnectReason = "go_away"
	// DisconnectAuth: authentication failed or did not come in time
	// ([ErrUnauthorized]).
	DisconnectAuth DisconnectReason = "auth"
	// DisconnectHandshake: the TLS or WebSocket handshake failed
	// ([ErrTLSHandshake], [ErrWebSocketHandshake]).
	DisconnectHandshake DisconnectReason = "handshake"
	// DisconnectProtocol: the peer broke the protocol ([ErrProtocol],
	// [ErrSizeOutOfBounds], [ErrTLS], [ErrWebSocket], and a client's
	// [ErrServerFull]).
	DisconnectProtocol DisconnectReason = "protocol"
	// DisconnectError: any other reason, such as a connection reset, and
	// the errors that never close a connection ([ErrInvalidOption],
	// [ErrCallOnLoop], ...).
	DisconnectError DisconnectReason = "error"
)

// disconnectReasons is the set Stats counts, in a fixed order.
var disconnectReasons = [...]DisconnectReason{DisconnectEOF, DisconnectIdle, DisconnectSlowConsumer,
	DisconnectRateLimit, DisconnectInboundFull, DisconnectShutdown, DisconnectLocal, DisconnectHandedOver,
	DisconnectGoAway, DisconnectAuth, DisconnectHandshake, DisconnectProtocol, DisconnectError}

// refuseNone is the refuse class of an error that never refuses a
// connection: it is counted in no Refused entry.
const refuseNone RefuseReason = ""

// errorClass is an error's place in the vocabulary.
type errorClass struct {
	err        error
	disconnect DisconnectReason
	refuse     RefuseReason
}

// errorClasses is every exported error of the package, and io.EOF, in the
// order they are matched with errors.Is: an error that wraps several
// counts under the first. The reasons that wrap others come first (a
// handshake cut by a shutdown is a shutdown, a client's ServerFull is
// also a protocol error), ErrClosed last: a call failed by a close wraps
// ErrClosed and the close's reason, which classifies it.
var errorClasses = [...]errorClass{
	{io.EOF, DisconnectEOF, refuseNone},
	{ErrShutdown, DisconnectShutdown, RefuseShutdown},
	{ErrServerClosed, DisconnectShutdown, RefuseShutdown},
	{ErrHandedOver, DisconnectHandedOver, refuseNone},
	{ErrUnauthorized, DisconnectAuth, RefuseAuth},
	{ErrIdle, DisconnectIdle, refuseNone},
	{ErrFrameDeadline, DisconnectIdle, refuseNone},
	{ErrSlowConsumer, DisconnectSlowConsumer, refuseNone},
	{ErrWriteDeadline, DisconnectSlowConsumer, refuseNone},
	{ErrOutboundFull, DisconnectSlowConsumer, refuseNone},
	{ErrRateLimited, DisconnectRateLimit, RefuseRate},
	{ErrInboundFull, DisconnectInboundFull, refuseNone},
	{ErrLocalClose, DisconnectLocal, refuseNone},
	{ErrGoAway, DisconnectGoAway, refuseNone},
	{ErrTLSHandshake, DisconnectHandshake, refuseNone},
	{ErrWebSocketHandshake, DisconnectHandshake, refuseNone},
	{ErrServerFull, DisconnectProtocol, RefuseServerFull},
	{ErrProtocol, DisconnectProtocol, refuseNone},
	{ErrSizeOutOfBounds, DisconnectProtocol, refuseNone},
	{ErrTLS, DisconnectProtocol, refuseNone},
	{ErrWebSocket, DisconnectProtocol, refuseNone},
	{ErrUnknownConn, DisconnectError, refuseNone},
	{ErrInvalidOption, DisconnectError, refuseNone},
	{ErrCallOnLoop, DisconnectError, refuseNone},
	{ErrEngineStopped, DisconnectError, refuseNone},
	{ErrClosed, DisconnectError, refuseNone},
}

// disconnectIndexOf maps each class to its index in disconnectReasons.
var disconnectIndexOf = func() map[DisconnectReason]int {
	m := make(map[DisconnectReason]int, len(disconnectReasons))
	for i, r := range disconnectReasons {
		m[r] = i
	}
	return m
}()

// DisconnectReasonOf returns the class of reason, an error a disconnect
// callback receives (see [WithOnDisconnect]), with errors.Is: an
// application that counts disconnects itself gets the classes [Stats]
// uses. An error the package does not know, nil included, is
// [DisconnectError]. It is safe for concurrent use.
func DisconnectReasonOf(reason error) DisconnectReason {
	return disconnectReasons[disconnectIndex(reason)]
}

// disconnectIndex returns the index in disconnectReasons of reason's
// class.
func disconnectIndex(reason error) int {
	if reason != nil {
		for i := range errorClasses {
			if errors.Is(reason, errorClasses[i].err) {
				return disconnectIndexOf[errorClasses[i].disconnect]
			}
		}
	}
	return len(disconnectReasons) - 1
}
