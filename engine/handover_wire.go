// This file names, for the handover's code, the wire of a handover between
// two servers (internal/handoverwire: batches of connection states with
// their sockets' descriptors, the successor's hello and acknowledgements,
// and the version both processes check).

package engine

import (
	"net"

	"github.com/simplerpc/simplerpc/internal/handoverwire"
)

// handedConn is the state of one connection handed over, its socket
// beside it (FD).
type handedConn = handoverwire.Conn

// handBatch is one message of the predecessor.
type handBatch = handoverwire.Batch

const (
	maxHandBatch = handoverwire.MaxBatch // descriptors in one batch
	helloAck     = handoverwire.Hello    // the successor's first word, with the version
	liveAck      = handoverwire.LiveAck  // a batch's connections are live at the successor
)

// errHandWire is what a malformed handover stream fails with.
var errHandWire = handoverwire.ErrWire

func writeBatch(uc *net.UnixConn, b *handBatch) error     { return handoverwire.WriteBatch(uc, b) }
func writeAck(uc *net.UnixConn, n uint32) error           { return handoverwire.WriteAck(uc, n) }
func readAck(uc *net.UnixConn) (uint32, error)            { return handoverwire.ReadAck(uc) }
func newHandReader(uc *net.UnixConn) *handoverwire.Reader { return handoverwire.NewReader(uc) }
func closeFDs(fds []int)                                  { handoverwire.CloseFDs(fds) }
func checkHello(n uint32) error                           { return handoverwire.CheckHello(n) }
