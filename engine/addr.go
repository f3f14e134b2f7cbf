// This file holds the schemes of the addresses a server listens on and a
// client dials: tcp:// and unix:// (listen, in accept.go, and the dialer),
// tls://, and ws:// and wss://, which pick the connections' layers.

package engine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// listenAddr opens the listener for one of Start's addresses: ws:// and
// wss:// ones here, the others as listen does.
func (c *config) listenAddr(ctx context.Context, addr string) (net.Listener, error) {
	secure := strings.HasPrefix(addr, "wss://")
	if !secure && !strings.HasPrefix(addr, "ws://") {
		bare, err := c.untls(addr)
		if err != nil {
			return nil, err
		}
		return listen(ctx, bare)
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("engine: address %q: want ws://host:port/path or wss://host:port/path", addr)
	}
	if secure && c.tls == nil {
		return nil, fmt.Errorf("engine: address %q: wss:// needs the WithTLS option", addr)
	}
	ln, err := listen(ctx, "tcp://"+u.Host)
	if err != nil {
		return nil, err
	}
	if secure {
		return WebSocketTLSListener(ln, u.Path), nil
	}
	return WebSocketListener(ln, u.Path), nil
}

// untls returns addr with a tls:// scheme turned into tcp://, and an error
// for tls:// without [WithTLS].
func (c *config) untls(addr string) (string, error) {
	rest, ok := strings.CutPrefix(addr, "tls://")
	if !ok {
		return addr, nil
	}
	if c.tls == nil {
		return "", fmt.Errorf("engine: address %q: tls:// needs the WithTLS option", addr)
	}
	return "tcp://" + rest, nil
}

// wsAddr reads a ws:// or wss:// address for a client: it returns the
// tcp:// address to dial and the layer maker of the connections. ok is
// false for any other address.
func (c *config) wsAddr(addr string) (bare string, mk func(*conn) layer, ok bool, err error) {
	secure := strings.HasPrefix(addr, "wss://")
	if !secure && !strings.HasPrefix(addr, "ws://") {
		return "", nil, false, nil
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || u.Hostname() == "" {
		return "", nil, true, fmt.Errorf("engine: address %q: want ws://host:port/path or wss://host:port/path", addr)
	}
	if secure && c.tls == nil {
		return "", nil, true, fmt.Errorf("engine: address %q: wss:// needs the WithTLS option", addr)
	}
	port := u.Port()
	if port == "" {
		port = map[bool]string{false: "80", true: "443"}[secure]
	}
	s := &wsSide{cfg: wslayer.Config{Client: true, Path: u.RequestURI(), Host: u.Host, Subprotocol: Subprotocol,
		MaxHeader: defaultWSConfig().maxHeader, Timeout: c.handshakeTimeout}}
	mk = s.newLayer
	if secure {
		mk = stacked(c.tls.newLayer, s.newLayer)
	}
	return "tcp://" + net.JoinHostPort(u.Hostname(), port), mk, true, nil
}
