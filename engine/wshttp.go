// This file holds the WebSocket endpoint an application mounts on its own
// net/http server: the upgrade request's connection leaves net/http for
// one of the server's event loops, with the bytes net/http had read.

package engine

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// WebSocketHandler returns an http.Handler that serves simplerpc over
// WebSocket wherever it is mounted on an application's own net/http
// server, beside its pages (mux.Handle("/rpc", srv.WebSocketHandler())):
// each upgrade request's connection is taken from net/http (hijacked) and
// handed, with whatever net/http had already read of it, to one of the
// server's event loops, which answers the upgrade there, with the options
// of [WithWebSocket]. From then on it is a connection of the server like
// one of a ws:// listener (no goroutine of its own, the same net ids,
// groups and sends to all), at the cost of one more copy of what it
// reads. The server must be running ([Server.Start] or
// [Server.StartOn], on any listener); until then and after its shutdown
// the handler answers 503.
//
// Only a plain HTTP/1.1 connection (TCP or Unix) can leave net/http:
// a request over HTTP/2 (which has no hijacking) gets 505 HTTP Version Not
// Supported, and one under net/http's own TLS (a *tls.Conn cannot be
// handed to an event loop) gets 501 Not Implemented: serve wss:// with
// [WithTLS] instead. A request that is not a WebSocket upgrade gets 426
// Upgrade Required.
//
// It is safe for concurrent use by multiple goroutines.
func (s *Server) WebSocketHandler() http.Handler { return wsHandler{s: s} }

type wsHandler struct{ s *Server }

func (h wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	switch {
	case s.state.Load() != stateRunning:
		http.Error(w, "simplerpc: the server is not running", http.StatusServiceUnavailable)
		return
	case r.ProtoMajor != 1:
		http.Error(w, "simplerpc: WebSocket needs HTTP/1.1 here (an HTTP/2 connection cannot be handed over)", http.StatusHTTPVersionNotSupported)
		return
	case r.TLS != nil:
		http.Error(w, "simplerpc: a connection under net/http's TLS cannot move to the event loop: serve wss:// with engine.WithTLS", http.StatusNotImplemented)
		return
	case !strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "simplerpc: a WebSocket upgrade is expected here", http.StatusUpgradeRequired)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "simplerpc: this ResponseWriter cannot hand its connection over", http.StatusInternalServerError)
		return
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		http.Error(w, "simplerpc: "+err.Error(), http.StatusInternalServerError)
		return
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		_, _ = fmt.Fprintf(nc, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		_ = nc.Close()
		return
	}
	// The request as it came, for the WebSocket layer to answer on the
	// loop, then what net/http had read past it.
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n", r.RequestURI, r.Host)
	_ = r.Header.Write(&req)
	req.WriteString("\r\n")
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		req.Write(b)
	}
	cfg := &s.side.cfg
	ws := &wsSide{cfg: wslayer.Config{Path: r.URL.Path, Subprotocol: Subprotocol, Origins: cfg.ws.origins,
		Binary: cfg.ws.binary, MaxHeader: max(cfg.ws.maxHeader, req.Len()), Timeout: cfg.handshakeTimeout}}
	stash := req.Bytes()
	s.enroll(nc, stacked(func(*conn) layer { return &prefixLayer{stash: stash} }, ws.newLayer))
}

// prefixLayer hands the bytes a connection brought from elsewhere (what
// net/http read before the handover) to the layer above it, before what
// the socket brings; then it passes bytes through.
type prefixLayer struct{ stash []byte }

func (p *prefixLayer) start(_ func([]byte) error, wake func()) error {
	wake() // the stash is there to read, whether or not the socket brings more
	return nil
}

func (p *prefixLayer) input(plain, in []byte) ([]byte, int, bool, error) {
	if p.stash != nil {
		plain = append(plain, p.stash...)
		p.stash = nil
	}
	return append(plain, in...), len(in), true, nil
}

func (p *prefixLayer) output(dst, b []byte) ([]byte, error) { return append(dst, b...), nil }
func (p *prefixLayer) pending() bool                        { return false }
func (p *prefixLayer) stop(err error) error                 { return err }
