package cluster

// This file holds the way out to the bus: the publisher, the one
// goroutine that hands queued messages to NATS, so that a slow NATS stalls
// only it and a node's messages keep their order; the bounded queue to
// it; and the inline path of callers that wait for an answer anyway.

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// outMsg is a message queued for the publisher. seq names the request a
// publish failure must end, or is 0.
type outMsg struct {
	subject, reply string
	data           []byte
	seq            uint64
}

func (n *Node) kickPublisher() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// enqueue queues a message for the publisher without waiting.
func (n *Node) enqueue(m outMsg) error {
	if err := n.running(); err != nil {
		return err
	}
	return n.enqueueAnswer(m)
}

// send hands m to NATS from the caller's goroutine when inline is set
// and nothing of the node's waits for the publisher (no queued message,
// none being published, no presence due), which keeps the node's order;
// otherwise it queues m as enqueue does. An inline publish may wait for
// nats.go's lock: only callers that wait for an answer anyway ask for it.
func (n *Node) send(m outMsg, inline bool) error {
	if !inline || n.queued.Load() != 0 || n.helloDue.Load() || n.beatDue.Load() {
		return n.enqueue(m)
	}
	if err := n.running(); err != nil {
		return err
	}
	if !n.busUp.Load() {
		return ErrBusDown
	}
	if err := n.nc.PublishRequest(m.subject, m.reply, m.data); err != nil {
		return n.refused(m, err)
	}
	n.st.published.Add(1)
	return nil
}

// refused counts a message NATS refused and returns the error for what
// waits on it.
func (n *Node) refused(m outMsg, err error) error {
	n.bad(badDropped, "NATS refused a message", "subject", m.subject, "err", err)
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrReconnectBufExceeded) {
		return fmt.Errorf("%w: %w", ErrBusDown, err)
	}
	return err
}

// enqueueAnswer is enqueue for the answers to other nodes' requests,
// which still go out while the node shuts down: the calls relayed to its
// connections end then, and their callers wait for the outcome.
func (n *Node) enqueueAnswer(m outMsg) error {
	if !n.busUp.Load() {
		return ErrBusDown
	}
	size := int64(len(m.data))
	if n.queued.Add(size) > int64(n.cfg.maxQueued) {
		n.queued.Add(-size)
		return ErrBusFull
	}
	select {
	case n.out <- m:
		return nil
	default:
		n.queued.Add(-size)
		return ErrBusFull
	}
}

// publisher is the one goroutine that hands messages to NATS, so that a
// slow NATS connection stalls only it, and messages keep their order.
// Presence messages due go out before the next queued message.
func (n *Node) publisher() {
	defer close(n.pubDone)
	for {
		select {
		case m := <-n.out:
			n.presenceDue()
			n.publish(m, true)
		case <-n.kick:
			n.presenceDue()
		case <-n.stopPub:
			for {
				select {
				case m := <-n.out:
					n.publish(m, true)
					continue
				default:
				}
				break
			}
			if n.byeDue.Load() {
				n.publishPresence(kindBye)
			}
			return
		}
	}
}

func (n *Node) presenceDue() {
	if n.helloDue.Swap(false) {
		n.publishPresence(kindHello)
		n.beatDue.Store(false) // a hello is a heartbeat too
	}
	if n.beatDue.Swap(false) {
		n.publishPresence(kindBeat)
	}
}

func (n *Node) publishPresence(k kind) {
	var data []byte
	if k == kindBye {
		data = appendHeader(nil, k, n.node, n.epoch)
	} else {
		data = appendPresence(nil, k, n.node, n.epoch, uint64(n.localLen()), n.localAddr())
	}
	n.publish(outMsg{subject: n.subj.presence, data: data}, false)
}

// publish hands m to NATS; queued says it was charged to the queue.
func (n *Node) publish(m outMsg, queued bool) {
	var err error
	if m.reply != "" {
		err = n.nc.PublishRequest(m.subject, m.reply, m.data)
	} else {
		err = n.nc.Publish(m.subject, m.data)
	}
	if queued {
		n.queued.Add(-int64(len(m.data)))
	}
	if err == nil {
		if queued {
			n.st.published.Add(1)
		}
		return
	}
	err = n.refused(m, err)
	if m.seq != 0 {
		if r := n.take(m.seq); r != nil {
			r.end(nil, err)
		}
	}
}
