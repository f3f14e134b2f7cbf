// This file holds the client's side of WebSocket: the ws:// and wss://
// addresses a Dialer dials, and how a Dial waits for the upgrade
// (internal/wslayer writes the request and checks the response).

package engine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/simplerpc/simplerpc/internal/wslayer"
)

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

// upgradeDone hands the outcome of an upgrade, nil or the reason its
// connection closed, to the Dial waiting for the first one; later ones
// are dropped. From any goroutine.
func (cl *Client) upgradeDone(err error) {
	if cl.dialed == nil {
		return
	}
	select {
	case cl.dialed <- err:
	default:
	}
}

// awaitUpgrade waits for the first upgrade of a ws:// client, after its
// TCP connection is up: Dial reports a refused upgrade as its error.
func (cl *Client) awaitUpgrade(ctx context.Context) error {
	if cl.dialed == nil {
		return nil
	}
	select {
	case err := <-cl.dialed:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
