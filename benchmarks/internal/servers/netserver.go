package servers

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/simplerpc/simplerpc/codec"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// netServer is a goroutine per connection on the standard library's net,
// doing the JSON work simplerpc does, with simplerpc's own codec: Decode
// (opcode and strict validation of the object) of every frame, then
// AppendRaw (validation again, the frame rebuilt and padded) of the reply.
//
// The naive form reads each frame with io.ReadFull on the socket and
// writes each reply with its own Write. The careful form reads through a
// bufio.Reader (Peek and Discard, no copy), builds replies in a
// bufio.Writer's free space and flushes only when no complete frame is left
// in the reader, so one read's worth of frames costs one write.
//
// Broadcast: the goroutine that read the trigger builds the frame once and
// writes it to every registered connection under that connection's write
// lock (the careful form flushes each one).
type netServer struct {
	ln      net.Listener
	size    int
	careful bool
	wg      sync.WaitGroup

	mu     sync.Mutex // guards conns, closed
	conns  map[*netConn]struct{}
	closed bool
}

// netConn is one connection; mu serialises its writers (its own goroutine
// and broadcasters).
type netConn struct {
	c  net.Conn
	mu sync.Mutex
	w  *bufio.Writer // careful form only
}

// startNet starts the naive or careful form, the careful one on a
// crypto/tls listener with overTLS (the handshake then runs on the
// connection's goroutine, at its first write).
func startNet(addr string, cfg Config, careful, overTLS bool) (Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if overTLS {
		tc, err := ServerTLS()
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
	}
	s := &netServer{ln: ln, size: cfg.Size, careful: careful, conns: make(map[*netConn]struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *netServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond) // EMFILE and the like: keep accepting
			continue
		}
		nc := &netConn{c: c}
		if s.careful {
			nc.w = bufio.NewWriter(c)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(nc)
	}
}

func (s *netServer) serve(nc *netConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		_ = nc.c.Close()
	}()
	if err := nc.write(wire.SizeFrame(s.size), true); err != nil {
		return
	}
	if s.careful {
		s.serveCareful(nc)
	} else {
		s.serveNaive(nc)
	}
}

func (s *netServer) serveNaive(nc *netConn) {
	in := make([]byte, s.size)
	out := make([]byte, 0, s.size)
	for {
		if _, err := io.ReadFull(nc.c, in); err != nil {
			return
		}
		op, obj, err := codec.Decode(in)
		if err != nil {
			continue // the benchmarks send no bad frames
		}
		switch op {
		case wire.OpEcho:
			out, err = codec.AppendRaw(out[:0], s.size, op, obj)
			if err != nil {
				continue
			}
			nc.mu.Lock()
			_, err = nc.c.Write(out)
			nc.mu.Unlock()
			if err != nil {
				return
			}
		case wire.OpBroadcast:
			s.broadcast(op, obj)
		}
	}
}

func (s *netServer) serveCareful(nc *netConn) {
	r := bufio.NewReader(nc.c)
	for {
		in, err := r.Peek(s.size)
		if err != nil {
			return
		}
		op, obj, err := codec.Decode(in)
		if err == nil {
			switch op {
			case wire.OpEcho:
				nc.mu.Lock()
				out, err := codec.AppendRaw(nc.w.AvailableBuffer(), s.size, op, obj)
				if err == nil {
					_, err = nc.w.Write(out)
				}
				if err == nil && r.Buffered() < 2*s.size {
					// This frame is the last complete one: flush.
					err = nc.w.Flush()
				}
				nc.mu.Unlock()
				if err != nil {
					return
				}
			case wire.OpBroadcast:
				s.broadcast(op, obj)
			}
		}
		_, _ = r.Discard(s.size)
	}
}

// write writes f now (flushing the careful form's buffer).
func (nc *netConn) write(f []byte, flush bool) error {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.w == nil {
		_, err := nc.c.Write(f)
		return err
	}
	if _, err := nc.w.Write(f); err != nil {
		return err
	}
	if flush {
		return nc.w.Flush()
	}
	return nil
}

func (s *netServer) broadcast(op codec.Opcode, obj []byte) {
	f, err := codec.AppendRaw(nil, s.size, op, obj)
	if err != nil {
		return
	}
	s.mu.Lock()
	conns := make([]*netConn, 0, len(s.conns))
	for nc := range s.conns {
		conns = append(conns, nc)
	}
	s.mu.Unlock()
	for _, nc := range conns {
		_ = nc.write(f, true)
	}
}

func (s *netServer) Addr() string { return s.ln.Addr().String() }

func (s *netServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for nc := range s.conns {
		_ = nc.c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}
