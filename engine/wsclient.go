// This file holds the client's side of WebSocket: the ws:// and wss://
// addresses a Dialer dials, the HTTP upgrade request it writes and the
// response it checks, read from the bytes the loop holds. The frames after
// it are ws.go's, masked.

package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// wsGUID is the GUID of RFC 6455 §1.3 that Sec-WebSocket-Accept hashes.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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
	s := &wsSide{cfg: defaultWSConfig(), path: u.RequestURI(), timeout: c.handshakeTimeout,
		host: u.Host, client: true}
	mk = s.newLayer
	if secure {
		mk = stacked(c.tls.newLayer, s.newLayer)
	}
	return "tcp://" + net.JoinHostPort(u.Hostname(), port), mk, true, nil
}

// request writes the upgrade request (RFC 6455 §4.1), with a fresh key,
// offering the simplerpc subprotocol.
func (l *wsLayer) request() error {
	var key [16]byte
	_, _ = rand.Read(key[:]) // never fails (crypto/rand)
	l.key = base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + l.s.path + " HTTP/1.1\r\n" +
		"Host: " + l.s.host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + l.key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + Subprotocol + "\r\n\r\n"
	return l.out([]byte(req))
}

// acceptKey returns the Sec-WebSocket-Accept that answers key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// response checks the server's answer to the upgrade, resp, whole: a 101
// that upgrades to WebSocket with the accept key of the request, and no
// subprotocol or extension the client did not offer. The client reports
// the outcome to a Dial waiting for it.
func (l *wsLayer) response(resp []byte) error {
	err := l.checkResponse(resp)
	if err == nil {
		if cl, ok := l.c.owner.(*Client); ok {
			cl.upgradeDone(nil)
		}
	}
	return err
}

func (l *wsLayer) checkResponse(resp []byte) error {
	lines := bytes.Split(resp[:len(resp)-4], []byte("\r\n"))
	status := lines[0]
	proto, rest, _ := bytes.Cut(status, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	n, err := strconv.Atoi(string(code))
	switch {
	case !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(code) != 3 || err != nil:
		return fmt.Errorf("%w: not an HTTP response: %.80q", ErrWebSocketHandshake, status)
	case n != 101:
		return fmt.Errorf("%w: the server answered %.80q", ErrWebSocketHandshake, status)
	}
	h := map[string]string{}
	for _, line := range lines[1:] {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: a malformed header line: %.80q", ErrWebSocketHandshake, line)
		}
		name := strings.ToLower(string(bytes.TrimSpace(k)))
		if old, ok := h[name]; ok {
			h[name] = old + ", " + string(bytes.TrimSpace(v))
		} else {
			h[name] = string(bytes.TrimSpace(v))
		}
	}
	hasToken := func(v, token string) bool {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
		return false
	}
	switch {
	case !strings.EqualFold(h["upgrade"], "websocket"):
		return fmt.Errorf("%w: 101 without Upgrade: websocket (%q)", ErrWebSocketHandshake, h["upgrade"])
	case !hasToken(h["connection"], "upgrade"):
		return fmt.Errorf("%w: 101 without Connection: Upgrade (%q)", ErrWebSocketHandshake, h["connection"])
	case h["sec-websocket-accept"] != acceptKey(l.key):
		return fmt.Errorf("%w: a wrong Sec-WebSocket-Accept %q", ErrWebSocketHandshake, h["sec-websocket-accept"])
	case h["sec-websocket-extensions"] != "":
		return fmt.Errorf("%w: an extension not offered: %q", ErrWebSocketHandshake, h["sec-websocket-extensions"])
	case h["sec-websocket-protocol"] != "" && h["sec-websocket-protocol"] != Subprotocol:
		return fmt.Errorf("%w: a subprotocol not offered: %q", ErrWebSocketHandshake, h["sec-websocket-protocol"])
	}
	return nil
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
