package codec

import "strconv"

// Opcode identifies what a frame carries. Non-negative opcodes belong to the
// application; negative ones are the protocol's own (docs/PROTOCOL.md §2).
type Opcode int32

// Protocol opcodes. -1 and -2 come from the original Python simplerpc; the
// others are this project's extensions, specified in docs/PROTOCOL.md, and a
// peer that does not know them ignores them.
const (
	// OpFailure carries {"reason": ..., "message": ...} back to the sender of
	// a request that failed.
	OpFailure Opcode = -1
	// OpMessageSize carries {"message_size": N}: the sender's frame size.
	OpMessageSize Opcode = -2
	// OpRequest carries a call that expects a reply:
	// {"id": ID, "op": OPCODE, "data": {...}}.
	OpRequest Opcode = -3
	// OpReply carries the answer to an OpRequest: {"id": ID, "data": {...}}.
	OpReply Opcode = -4
	// OpReplyFailure carries a failed OpRequest:
	// {"id": ID, "reason": ..., "message": ...}.
	OpReplyFailure Opcode = -5
	// OpPing asks the peer for an OpPong: {"t": N}.
	OpPing Opcode = -6
	// OpPong answers an OpPing with the same object.
	OpPong Opcode = -7
	// OpGoAway tells a client the server is going away (a restart, an
	// upgrade): {"reason": "..."}. The client finishes the calls it has in
	// flight and reconnects.
	OpGoAway Opcode = -8
	// OpAuth carries a client's credentials, any object, as its first
	// frame to a server that requires them; the server answers with
	// {"identity": "..."} on the same opcode, or a failure.
	OpAuth Opcode = -9
)

// String returns the name of a protocol opcode, or the decimal number.
func (o Opcode) String() string {
	switch o {
	case OpFailure:
		return "failure(-1)"
	case OpMessageSize:
		return "message_size(-2)"
	case OpRequest:
		return "request(-3)"
	case OpReply:
		return "reply(-4)"
	case OpReplyFailure:
		return "reply_failure(-5)"
	case OpPing:
		return "ping(-6)"
	case OpPong:
		return "pong(-7)"
	case OpGoAway:
		return "go_away(-8)"
	case OpAuth:
		return "auth(-9)"
	}
	return strconv.FormatInt(int64(o), 10)
}
