package servers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/panjf2000/gnet/v2"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// rawGnet is the ceiling: it never parses JSON. It echoes every complete
// frame one read produced with one Write, and only looks at the first byte
// of each frame to find the broadcast trigger. Its registry for broadcast
// is a slice per event loop, touched only on that loop; a broadcast is one
// Execute per loop that writes the frame to each of its connections.
type rawGnet struct {
	gnet.BuiltinEventEngine
	size   int
	sizeF  []byte
	eng    gnet.Engine
	addr   string
	booted chan struct{}
	done   chan struct{}

	mu    sync.Mutex // guards loops
	loops map[gnet.EventLoop]*rawLoop
}

// rawLoop is the registry of one loop; loop-only.
type rawLoop struct {
	conns []gnet.Conn
}

// rawConn is a connection's context: its index in its loop's registry.
type rawConn struct{ idx int }

func startRawGnet(addr string, cfg Config) (Server, error) {
	s := &rawGnet{size: cfg.Size, sizeF: wire.SizeFrame(cfg.Size), booted: make(chan struct{}),
		done: make(chan struct{}), loops: make(map[gnet.EventLoop]*rawLoop)}
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Run(s, "tcp://"+addr, gnet.WithNumEventLoop(cfg.Loops), gnet.WithReuseAddr(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithReadBufferCap(64<<10), gnet.WithWriteBufferCap(16<<10),
			gnet.WithLogger(quiet{}))
		close(s.done)
	}()
	select {
	case <-s.booted:
		return s, nil
	case err := <-errc:
		if err == nil {
			err = errors.New("engine stopped")
		}
		return nil, fmt.Errorf("rawgnet: %w", err)
	}
}

func (s *rawGnet) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	if fd, err := eng.Dup(); err == nil {
		f := os.NewFile(uintptr(fd), "listener")
		if ln, err := net.FileListener(f); err == nil {
			s.addr = ln.Addr().String()
			_ = ln.Close()
		}
		_ = f.Close()
	}
	close(s.booted)
	return gnet.None
}

func (s *rawGnet) loop(el gnet.EventLoop) *rawLoop {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.loops[el]
	if l == nil {
		l = &rawLoop{}
		s.loops[el] = l
	}
	return l
}

func (s *rawGnet) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	l := s.loop(c.EventLoop())
	c.SetContext(&rawConn{idx: len(l.conns)})
	l.conns = append(l.conns, c)
	return s.sizeF, gnet.None
}

func (s *rawGnet) OnClose(c gnet.Conn, _ error) gnet.Action {
	rc, ok := c.Context().(*rawConn)
	if !ok {
		return gnet.None
	}
	l := s.loop(c.EventLoop())
	last := len(l.conns) - 1
	if rc.idx <= last && l.conns[rc.idx] == c {
		moved := l.conns[last]
		l.conns[rc.idx] = moved
		moved.Context().(*rawConn).idx = rc.idx
		l.conns[last] = nil
		l.conns = l.conns[:last]
	}
	return gnet.None
}

func (s *rawGnet) OnTraffic(c gnet.Conn) gnet.Action {
	n := c.InboundBuffered() / s.size * s.size
	if n == 0 {
		return gnet.None
	}
	b, err := c.Peek(n)
	if err != nil {
		return gnet.Close
	}
	// The fast path: no broadcast trigger, one Write of everything.
	trigger := false
	for i := 0; i < n; i += s.size {
		if b[i] == '1' {
			trigger = true
			break
		}
	}
	if !trigger {
		_, _ = c.Write(b)
		_, _ = c.Discard(n)
		return gnet.None
	}
	start := 0 // echo frames not yet written
	for i := 0; i < n; i += s.size {
		if b[i] != '1' {
			continue
		}
		if start < i {
			_, _ = c.Write(b[start:i])
		}
		s.broadcast(append([]byte(nil), b[i:i+s.size]...))
		start = i + s.size
	}
	if start < n {
		_, _ = c.Write(b[start:n])
	}
	_, _ = c.Discard(n)
	return gnet.None
}

// broadcast writes f to every connection, with one Execute per loop.
func (s *rawGnet) broadcast(f []byte) {
	s.mu.Lock()
	loops := make([]gnet.EventLoop, 0, len(s.loops))
	for el := range s.loops {
		loops = append(loops, el)
	}
	s.mu.Unlock()
	for _, el := range loops {
		l := s.loop(el)
		_ = el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			// Backwards: a failing Write closes its conn at once, and
			// OnClose swaps the last one into its place.
			for i := len(l.conns) - 1; i >= 0; i-- {
				if i < len(l.conns) {
					_, _ = l.conns[i].Write(f)
				}
			}
			return nil
		}))
	}
}

func (s *rawGnet) Addr() string { return s.addr }

func (s *rawGnet) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.done; cancel() }()
	_ = s.eng.Stop(ctx)
	<-s.done
	return nil
}

type quiet struct{}

func (quiet) Debugf(string, ...any) {}
func (quiet) Infof(string, ...any)  {}
func (quiet) Warnf(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (quiet) Fatalf(string, ...any) {}
