// This file runs the server role: the three listeners (page, WebSocket,
// TCP), the engine.Server behind the last two and the http.Server behind
// the first, until the context ends.

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/simplerpc/simplerpc/engine"
)

// listeners are the server role's sockets.
type listeners struct {
	page, ws, tcp net.Listener
}

// listen opens the three listeners, or none.
func listen(ctx context.Context, httpAddr, wsAddr, tcpAddr string) (*listeners, error) {
	var lc net.ListenConfig
	var lns []net.Listener
	for _, addr := range []string{httpAddr, wsAddr, tcpAddr} {
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
	}
	return &listeners{page: lns[0], ws: lns[1], tcp: lns[2]}, nil
}

// close closes the three; after a failed start, some may be closed already.
func (l *listeners) close() {
	_ = l.page.Close()
	_ = l.ws.Close()
	_ = l.tcp.Close()
}

// server is a running server role: the chat on its engine.Server, and the
// page's http.Server.
type server struct {
	chat *chat
	page *http.Server
	lns  *listeners
	errc chan error // the page server's end

	stopOnce sync.Once
	stopErr  error // shutdown's, set once
}

// start starts the chat on lns, which it then owns.
func start(ctx context.Context, p *printer, lns *listeners) (_ *server, err error) {
	defer func() {
		if err != nil {
			lns.close()
		}
	}()
	h, err := pageHandler(portOf(lns.ws.Addr()))
	if err != nil {
		return nil, err
	}
	var opts []engine.ServerOption
	if origins := pageOrigins(lns.page.Addr()); len(origins) > 0 {
		opts = append(opts, engine.WithWebSocket(engine.WebSocketOrigins(origins...)))
	}
	c, err := newChat(p, opts...)
	if err != nil {
		return nil, err
	}
	if err := c.srv.StartOn(ctx, lns.tcp, engine.WebSocketListener(lns.ws, wsPath)); err != nil {
		return nil, err
	}
	s := &server{chat: c, lns: lns, errc: make(chan error, 1)}
	s.page = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.errc <- s.page.Serve(lns.page) }()
	return s, nil
}

// url returns the page's URL.
func (s *server) url() string {
	host, port, _ := net.SplitHostPort(s.lns.page.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// shutdown stops both servers, within 5 s, and returns the first error;
// it does so once, and later calls return the same error.
func (s *server) shutdown() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.page.Shutdown(ctx)
		if perr := <-s.errc; !errors.Is(perr, http.ErrServerClosed) && err == nil {
			err = perr
		}
		if serr := s.chat.srv.Shutdown(ctx); serr != nil && !errors.Is(serr, engine.ErrServerClosed) && err == nil {
			err = serr
		}
		s.stopErr = err
	})
	return s.stopErr
}

// serve runs the server role until ctx ends.
func serve(ctx context.Context, p *printer, httpAddr, wsAddr, tcpAddr string) error {
	lns, err := listen(ctx, httpAddr, wsAddr, tcpAddr)
	if err != nil {
		return err
	}
	s, err := start(ctx, p, lns)
	if err != nil {
		return err
	}
	p.printf("chat: open %s in a browser\n", s.url())
	p.printf("chat: WebSocket on ws://%s%s, Go clients on %s (-role client -tcp %[3]s -name NAME)\n",
		lns.ws.Addr(), wsPath, lns.tcp.Addr())
	var failed error
	select {
	case <-ctx.Done():
	case <-s.chat.srv.Done():
		// The engine also stops when ctx ends: only a stop of its own is a
		// failure.
		if ctx.Err() == nil {
			failed = fmt.Errorf("the chat server stopped: %w", s.chat.srv.Err())
		}
	case err := <-s.errc:
		s.errc <- err // for shutdown
		failed = fmt.Errorf("the page server stopped: %w", err)
	}
	if err := s.shutdown(); err != nil && failed == nil {
		failed = err
	}
	return failed
}
