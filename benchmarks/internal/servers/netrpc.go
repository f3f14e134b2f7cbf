package servers

import (
	"errors"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"sync"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// NetRPCMethod is the net/rpc method the call scenario calls.
const NetRPCMethod = "Bench.Echo"

// Bench is the net/rpc service: Echo returns its argument, decoded into
// the same struct as simplerpc's typed call handler.
type Bench struct{}

// Echo copies args to reply.
func (Bench) Echo(args *wire.CallArgs, reply *wire.CallArgs) error {
	*reply = *args
	return nil
}

// netRPC is net/rpc with its jsonrpc codec, a goroutine per connection
// (ServeCodec). It speaks JSON-RPC 1.0 lines, not frames: no -2 frame.
type netRPC struct {
	ln  net.Listener
	srv *rpc.Server
	wg  sync.WaitGroup

	mu     sync.Mutex // guards conns
	conns  map[net.Conn]struct{}
	closed bool
}

func startNetRPC(addr string) (Server, error) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Bench", Bench{}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &netRPC{ln: ln, srv: srv, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				srv.ServeCodec(jsonrpc.NewServerCodec(c))
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

func (s *netRPC) Addr() string { return s.ln.Addr().String() }

func (s *netRPC) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}
