package servers

// This file is the goroutine-per-connection WebSocket server: net/http and
// gorilla/websocket, with netcareful's codec work on each message.

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/simplerpc/simplerpc/codec"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// netWSServer upgrades at wire.WSPath with gorilla/websocket's Upgrader (4
// KiB read and write buffers, its defaults) and serves each connection on
// the handler's goroutine, as a gorilla application does: it reads each
// message into a buffer of its own (NextReader, no allocation per
// message), decodes it with codec.Decode, rebuilds the reply with
// codec.AppendRaw and writes it with WriteMessage, which is one write per
// message: gorilla has no way to hold a message for the next one. Text
// messages both ways, as simplerpc's server sends by default. It echoes
// opcode 0 and ignores the rest.
type netWSServer struct {
	ln   net.Listener
	size int
	http *http.Server
	up   websocket.Upgrader
	done chan struct{}

	mu     sync.Mutex // guards conns
	conns  map[*websocket.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

func startNetWS(addr string, cfg Config) (Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &netWSServer{ln: ln, size: cfg.Size, done: make(chan struct{}), conns: make(map[*websocket.Conn]struct{})}
	s.up = websocket.Upgrader{Subprotocols: []string{"simplerpc"}, HandshakeTimeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc(wire.WSPath, s.handle)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(ln)
	}()
	return s, nil
}

func (s *netWSServer) handle(w http.ResponseWriter, r *http.Request) {
	c, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
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
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
		s.wg.Done()
	}()
	s.serve(c)
}

func (s *netWSServer) serve(c *websocket.Conn) {
	c.SetReadLimit(int64(s.size))
	if err := c.WriteMessage(websocket.TextMessage, wire.SizeFrame(s.size)); err != nil {
		return
	}
	in := make([]byte, s.size)
	out := make([]byte, 0, s.size)
	for {
		_, r, err := c.NextReader()
		if err != nil {
			return
		}
		n, err := io.ReadFull(r, in)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return
		}
		op, obj, err := codec.Decode(in[:n])
		if err != nil || op != wire.OpEcho {
			continue // the benchmarks send no bad frames
		}
		out, err = codec.AppendRaw(out[:0], s.size, op, obj)
		if err != nil {
			continue
		}
		if err := c.WriteMessage(websocket.TextMessage, out); err != nil {
			return
		}
	}
}

func (s *netWSServer) Addr() string { return s.ln.Addr().String() }

func (s *netWSServer) Close() error {
	err := s.http.Close() // closes the listener; hijacked connections are ours
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.NetConn().Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	<-s.done
	return err
}
