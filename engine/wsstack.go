// This file stacks one transport layer on another, on the seam of
// transport.go: WebSocket over TLS for wss://, without either knowing.

package engine

import "crypto/tls"

// stacked returns the layer maker of connections that run upper over
// lower: lower takes the socket's bytes, upper the plaintext lower yields.
func stacked(lower, upper func(*conn) layer) func(*conn) layer {
	return func(c *conn) layer { return &stack{lower: lower(c), upper: upper(c)} }
}

// stack is a layer over another. The upper layer starts once the lower
// one's handshake is over (a WebSocket upgrade goes over TLS); what it
// writes by itself (its handshake, pongs, close frames) goes through the
// lower layer's output. Loop only, as every layer.
type stack struct {
	lower, upper layer
	out          func([]byte) error // writes wire bytes to the socket
	wake         func()

	started bool   // upper has started
	ready   bool   // upper's handshake is over too
	mid     []byte // the lower layer's plaintext the upper one has not consumed
	midOut  []byte // the upper layer's output, reused
	enc     []byte // the lower layer's output of what the upper writes, reused
}

func (s *stack) start(out func([]byte) error, wake func()) error {
	s.out, s.wake = out, wake
	return s.lower.start(out, wake)
}

// upperOut writes what the upper layer writes by itself through the lower.
func (s *stack) upperOut(b []byte) error {
	enc, err := s.lower.output(s.enc[:0], b)
	if err != nil {
		return err
	}
	s.enc = enc[:0]
	return s.out(enc)
}

func (s *stack) input(plain, in []byte) ([]byte, int, bool, error) {
	mid, n, ready, err := s.lower.input(s.mid, in)
	s.mid = mid
	if err != nil || !ready {
		return plain, n, false, err
	}
	if !s.started {
		s.started = true
		if err := s.upper.start(s.upperOut, s.wake); err != nil {
			return plain, n, false, err
		}
	}
	plain, k, ready, err := s.upper.input(plain, s.mid)
	s.ready = s.ready || ready
	// What the upper layer left (a partial frame) stays for the next round.
	s.mid = s.mid[:copy(s.mid, s.mid[k:])]
	return plain, n, ready, err
}

func (s *stack) output(dst, p []byte) ([]byte, error) {
	mid, err := s.upper.output(s.midOut[:0], p)
	if err != nil {
		return dst, err
	}
	s.midOut = mid[:0]
	return s.lower.output(dst, mid)
}

func (s *stack) pending() bool {
	return len(s.mid) > 0 || s.lower.pending() || s.started && s.upper.pending()
}

// stop stops the upper layer first, whose last words (a close frame) go
// out through the lower one, then the lower. The reason is that of the
// layer whose handshake was under way, if one was; after both, the
// lower's, which knows how the stream ended (close_notify, a truncated
// record).
func (s *stack) stop(err error) error {
	uerr := err
	if s.started {
		uerr = s.upper.stop(err)
	}
	lerr := s.lower.stop(err)
	if s.started && !s.ready {
		return uerr
	}
	return lerr
}

// tlsState is that of the layer of the two that carries TLS, if one does.
func (s *stack) tlsState() (tls.ConnectionState, bool) {
	for _, l := range []layer{s.lower, s.upper} {
		if st, ok := l.(tlsStater); ok {
			return st.tlsState()
		}
	}
	return tls.ConnectionState{}, false
}
