// This file holds the checks of the ws:// and wss:// addresses of --addr;
// package service listens on them and names their sockets.

package main

import (
	"net/url"
	"strings"
)

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
