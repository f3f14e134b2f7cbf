// This file holds serve's WebSocket listeners: the ws:// and wss://
// addresses of --addr, the listener names (LISTEN_FDNAMES) that tell a
// successor or a socket unit which inherited socket speaks WebSocket at
// which path, and the listeners handed to the engine.

package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/simplerpc/simplerpc/engine"
)

// plainName is the name of a listener that speaks the protocol over TCP
// (or TLS, or a Unix socket), as serve has always named its socket.
const plainName = "simplerpc"

// wsScheme returns the scheme of a ws:// or wss:// address, else "".
func wsScheme(addr string) string {
	switch {
	case strings.HasPrefix(addr, "ws://"):
		return "ws"
	case strings.HasPrefix(addr, "wss://"):
		return "wss"
	}
	return ""
}

// checkWSAddr rejects a ws:// or wss:// address the engine could not use,
// as a usage error. A listening one needs a port (0 for a free one) and a
// path without ':' (its listener's name carries it); a dialed one may
// leave the port to the scheme (80, 443).
func checkWSAddr(addr string, listening bool) error {
	u, err := url.Parse(addr)
	switch {
	case err != nil || u.Host == "" || u.Hostname() == "" || u.User != nil || u.Fragment != "":
		return usagef("--addr %q is not of the form %s://host:port/path", addr, wsScheme(addr))
	case listening && u.RawQuery != "":
		return usagef("--addr %q: a WebSocket listener's path takes no query", addr)
	case listening && strings.Contains(u.Path, ":"):
		return usagef("--addr %q: a WebSocket listener's path must not contain ':'", addr)
	case listening && u.Port() == "":
		return usagef("--addr %q has no port (port 0 picks a free one)", addr)
	case u.Port() == "":
		return nil
	}
	return checkPort(addr, u.Port(), listening)
}

// wsListenerName is the name of the listener of a ws:// or wss:// address
// at path: "ws/rpc" for ws://host:port/rpc, "wss/" for wss://host:port. A
// socket unit names its socket so (FileDescriptorName=ws/rpc) to have it
// served as WebSocket.
func wsListenerName(scheme, path string) string {
	if path == "" {
		path = "/"
	}
	return scheme + path
}

// wsOfName reads a listener's name: its scheme, "ws" or "wss", and path,
// or "" for a listener that does not speak WebSocket.
func wsOfName(name string) (scheme, path string) {
	for _, s := range []string{"wss", "ws"} {
		if p, ok := strings.CutPrefix(name, s); ok && strings.HasPrefix(p, "/") {
			return s, p
		}
	}
	return "", ""
}

// listenAll opens a listener for each address of --addr, and names it.
// On an error it closes those it opened.
func listenAll(ctx context.Context, addrs []string) ([]net.Listener, []string, error) {
	lns := make([]net.Listener, 0, len(addrs))
	names := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		bind, name := addr, plainName
		if s := wsScheme(addr); s != "" {
			u, _ := url.Parse(addr) // checked by checkWSAddr
			bind, name = "tcp://"+u.Host, wsListenerName(s, u.Path)
		}
		ln, err := listenOn(ctx, bind)
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return nil, nil, err
		}
		lns, names = append(lns, ln), append(names, name)
	}
	return lns, names, nil
}

// servedListeners returns the listeners to serve, by their names: those
// named for WebSocket wrapped for the engine. lns themselves are kept for
// an upgrade, which hands their sockets on.
func servedListeners(lns []net.Listener, names []string) []net.Listener {
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		out[i] = ln
		if i >= len(names) {
			continue
		}
		switch scheme, path := wsOfName(names[i]); scheme {
		case "ws":
			out[i] = engine.WebSocketListener(ln, path)
		case "wss":
			out[i] = engine.WebSocketTLSListener(ln, path)
		}
	}
	return out
}

// listenerURL is the address of a listener named name, as --addr and the
// clients take it: "ws://127.0.0.1:8080/rpc" for a WebSocket one.
func listenerURL(ln net.Listener, name string) string {
	if scheme, path := wsOfName(name); scheme != "" {
		return fmt.Sprintf("%s://%s%s", scheme, ln.Addr(), path)
	}
	return listenAddr(ln.Addr())
}

// tlsAddr returns the first address of addrs that asks for TLS (tls://,
// wss://), or the first address: the one TLS's usage errors name.
func tlsAddr(addrs []string) string {
	for _, a := range addrs {
		if isTLSAddr(a) {
			return a
		}
	}
	return addrs[0]
}
