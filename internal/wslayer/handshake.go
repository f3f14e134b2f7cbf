// This file holds the HTTP upgrade of RFC 6455 §4: the server's answer to
// a request read whole from the bytes that arrived (gobwas/ws's upgrader),
// the client's request and its check of the answer.

package wslayer

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/gobwas/ws"
)

// guid is the GUID of RFC 6455 §1.3 that Sec-WebSocket-Accept hashes.
const guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// handshake reads the upgrade request (server) or response (client) from
// in once it is all there and answers or checks it. It returns the bytes
// the head took, 0 while it is not all there.
func (l *Layer) handshake(in []byte) (int, error) {
	client := l.cfg.Client
	if l.expired.Load() {
		if client {
			return 0, l.expiredError()
		}
		return 0, l.refuse(408, l.expiredError())
	}
	end := bytes.Index(in, []byte("\r\n\r\n"))
	limit := l.cfg.MaxHeader
	switch {
	case client && !bytes.HasPrefix(in, []byte("HTTP/")[:min(len(in), 5)]):
		return 0, fmt.Errorf("%w: not an HTTP response: %.40q", ErrHandshake, in)
	case end < 0 && len(in) <= limit:
		return 0, nil // the rest of the head is to come
	case (end < 0 || end+4 > limit) && client:
		return 0, fmt.Errorf("%w: the server's response is over %d bytes", ErrHandshake, limit)
	case end < 0 || end+4 > limit:
		return 0, l.refuse(431, fmt.Errorf("%w: the request is over %d bytes (WebSocketMaxHeader)", ErrHandshake, limit))
	}
	n := end + 4
	if client {
		if err := l.checkResponse(in[:n]); err != nil {
			return n, err
		}
		if l.env.Upgraded != nil {
			l.env.Upgraded()
		}
		return n, nil
	}
	return n, l.upgrade(in[:n])
}

// rw is the in-memory connection gobwas/ws's upgrader reads the request
// from and writes its response to: all the request is there, so it never
// blocks.
type rw struct {
	r *bytes.Reader
	w bytes.Buffer
}

func (c *rw) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *rw) Write(p []byte) (int, error) { return c.w.Write(p) }

// upgrade answers the upgrade request req, whole, and reports why it
// refused it.
func (l *Layer) upgrade(req []byte) error {
	cfg := l.cfg
	var host, origin []byte
	u := ws.Upgrader{
		ReadBufferSize: cfg.MaxHeader,
		Protocol:       func(p []byte) bool { return string(p) == cfg.Subprotocol },
		OnRequest: func(uri []byte) error {
			p, _, _ := bytes.Cut(uri, []byte("?"))
			if string(p) != cfg.Path {
				return ws.RejectConnectionError(ws.RejectionStatus(404), ws.RejectionReason("no WebSocket at "+string(p)))
			}
			return nil
		},
		OnHost: func(h []byte) error { host = bytes.Clone(h); return nil },
		OnHeader: func(k, v []byte) error {
			if string(k) == "Origin" {
				origin = bytes.Clone(v)
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			if !originAllowed(cfg.Origins, origin, host) {
				return nil, ws.RejectConnectionError(ws.RejectionStatus(403), ws.RejectionReason("origin not allowed"))
			}
			if !validKey(req) {
				return nil, ws.ErrHandshakeBadSecKey
			}
			return nil, nil
		},
	}
	c := &rw{r: bytes.NewReader(req)}
	_, err := u.Upgrade(c)
	if c.w.Len() == 0 && err != nil {
		// A request gobwas/ws could not read as HTTP: it wrote nothing.
		return l.refuse(400, fmt.Errorf("%w: %w", ErrHandshake, err))
	}
	if werr := l.env.Out(c.w.Bytes()); werr != nil {
		return werr
	}
	if err != nil {
		code := 0
		var rej *ws.ConnectionRejectedError
		if errors.As(err, &rej) {
			code = rej.StatusCode()
		}
		return fmt.Errorf("%w: %d: %w", ErrHandshake, code, err)
	}
	return nil
}

// validKey reports whether the Sec-WebSocket-Key of req is, as RFC 6455
// §4.1 asks, 16 bytes in base64; gobwas/ws checks only its length.
func validKey(req []byte) bool {
	for line := range bytes.SplitSeq(req, []byte("\r\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !strings.EqualFold(string(bytes.TrimSpace(k)), "Sec-WebSocket-Key") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(v)))
		return err == nil && len(b) == 16
	}
	return false
}

// originAllowed applies the origin check to a request's Origin and Host:
// no Origin (not a browser) passes; else its host must match one of
// patterns, or with nil patterns the Host. It is safe for concurrent use.
func originAllowed(patterns []string, origin, host []byte) bool {
	if len(origin) == 0 {
		return true // not a browser: no cookies to hijack
	}
	u, err := url.Parse(string(origin))
	if err != nil || u.Host == "" {
		return false
	}
	o := strings.ToLower(u.Host)
	if patterns == nil {
		return o == strings.ToLower(string(host))
	}
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), o); ok || p == "*" {
			return true
		}
	}
	return false
}

// refuse answers the upgrade with an HTTP error status and returns err.
func (l *Layer) refuse(code int, err error) error {
	text := map[int]string{400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}[code]
	_ = l.env.Out([]byte("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	return err
}

// request writes the client's upgrade request (RFC 6455 §4.1), with a
// fresh key, offering the subprotocol.
func (l *Layer) request() error {
	var key [16]byte
	_, _ = rand.Read(key[:]) // never fails (crypto/rand)
	l.key = base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + l.cfg.Path + " HTTP/1.1\r\n" +
		"Host: " + l.cfg.Host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + l.key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + l.cfg.Subprotocol + "\r\n\r\n"
	return l.env.Out([]byte(req))
}

// acceptKey returns the Sec-WebSocket-Accept that answers key. It is safe
// for concurrent use.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + guid))
	return base64.StdEncoding.EncodeToString(h[:])
}

// checkResponse checks the server's answer to the upgrade, resp, whole: a
// 101 that upgrades to WebSocket with the accept key of the request, and no
// subprotocol or extension the client did not offer.
func (l *Layer) checkResponse(resp []byte) error {
	lines := bytes.Split(resp[:len(resp)-4], []byte("\r\n"))
	status := lines[0]
	proto, rest, _ := bytes.Cut(status, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	n, err := strconv.Atoi(string(code))
	switch {
	case !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(code) != 3 || err != nil:
		return fmt.Errorf("%w: not an HTTP response: %.80q", ErrHandshake, status)
	case n != 101:
		return fmt.Errorf("%w: the server answered %.80q", ErrHandshake, status)
	}
	h := map[string]string{}
	for _, line := range lines[1:] {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: a malformed header line: %.80q", ErrHandshake, line)
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
		return fmt.Errorf("%w: 101 without Upgrade: websocket (%q)", ErrHandshake, h["upgrade"])
	case !hasToken(h["connection"], "upgrade"):
		return fmt.Errorf("%w: 101 without Connection: Upgrade (%q)", ErrHandshake, h["connection"])
	case h["sec-websocket-accept"] != acceptKey(l.key):
		return fmt.Errorf("%w: a wrong Sec-WebSocket-Accept %q", ErrHandshake, h["sec-websocket-accept"])
	case h["sec-websocket-extensions"] != "":
		return fmt.Errorf("%w: an extension not offered: %q", ErrHandshake, h["sec-websocket-extensions"])
	case h["sec-websocket-protocol"] != "" && h["sec-websocket-protocol"] != l.cfg.Subprotocol:
		return fmt.Errorf("%w: a subprotocol not offered: %q", ErrHandshake, h["sec-websocket-protocol"])
	}
	return nil
}
