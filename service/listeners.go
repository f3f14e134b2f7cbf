// This file holds Run's listeners: those a service manager or a
// predecessor hands over (LISTEN_FDS), those opened on the addresses given,
// and their names (LISTEN_FDNAMES), which say which speak WebSocket at
// which path.

package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/simplerpc/simplerpc/engine"
)

// ErrNoListener is returned by Run when it has nothing to listen on: no
// socket handed over and no address given.
var ErrNoListener = errors.New("service: no socket handed over and no address to listen on")

// ErrOption is wrapped by the error Run returns for an option it cannot
// use.
var ErrOption = errors.New("invalid option")

// PlainName is the name of a listener that serves the protocol itself
// (over TCP, TLS or a Unix socket): the name Run gives such a socket when
// it hands it to a successor.
const PlainName = "simplerpc"

// ListenerName returns the name of a listener (LISTEN_FDNAMES, a socket
// unit's FileDescriptorName=) that serves WebSocket at path, scheme being
// "ws" or "wss" (under the server's TLS): "ws/rpc" for ws://host:port/rpc,
// "wss/" for wss://host:port. It is safe from any goroutine.
func ListenerName(scheme, path string) string {
	if path == "" {
		path = "/"
	}
	return scheme + path
}

// ParseListenerName reads a listener's name: its WebSocket scheme, "ws" or
// "wss", and path; or "", "" for a listener that serves the protocol
// itself. It is safe from any goroutine.
func ParseListenerName(name string) (scheme, path string) {
	for _, s := range []string{"wss", "ws"} {
		if p, ok := strings.CutPrefix(name, s); ok && strings.HasPrefix(p, "/") {
			return s, p
		}
	}
	return "", ""
}

// parseAddr returns the address to bind for addr, as net.Listen takes it
// (network, address), and the listener's name.
func parseAddr(addr string) (bind, name string, err error) {
	network, rest, ok := strings.Cut(addr, "://")
	switch {
	case !ok:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", "", fmt.Errorf("address %q: %w", addr, err)
		}
		return "tcp://" + addr, PlainName, nil
	case network == "tcp" || network == "tcp4" || network == "tcp6":
		return addr, PlainName, nil
	case network == "tls":
		return "tcp://" + rest, PlainName, nil
	case network == "unix" && rest != "":
		return addr, PlainName, nil
	case network == "ws" || network == "wss":
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || u.Port() == "" || u.RawQuery != "" || strings.Contains(u.Path, ":") {
			return "", "", fmt.Errorf("address %q: want %s://host:port/path, the path without ':' or a query", addr, network)
		}
		return "tcp://" + u.Host, ListenerName(network, u.Path), nil
	}
	return "", "", fmt.Errorf("address %q: want host:port, tcp://, tcp4://, tcp6://, tls://, unix:///path, ws:// or wss://", addr)
}

// listenAll opens a listener for each address, and names it. On an error
// it closes those it opened.
func listenAll(ctx context.Context, addrs []string) ([]net.Listener, []string, error) {
	lns := make([]net.Listener, 0, len(addrs))
	names := make([]string, 0, len(addrs))
	for _, addr := range addrs {
		ln, name, err := listenOn(ctx, addr)
		if err != nil {
			closeAll(lns)
			return nil, nil, err
		}
		lns, names = append(lns, ln), append(names, name)
	}
	return lns, names, nil
}

// listenOn opens the listener of addr.
func listenOn(ctx context.Context, addr string) (net.Listener, string, error) {
	bind, name, err := parseAddr(addr)
	if err != nil {
		return nil, "", err
	}
	network, address, _ := strings.Cut(bind, "://")
	if network == "unix" {
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(address)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, name, nil
}

// activated returns the sockets handed to this process (LISTEN_FDS for
// LISTEN_PID), or none, with their names (LISTEN_FDNAMES). It unsets the
// variables, so that no child takes them for its own.
func activated() ([]net.Listener, []string, error) {
	files := activation.Files(true)
	lns := make([]net.Listener, 0, len(files))
	names := make([]string, 0, len(files))
	var err error
	for i, f := range files {
		ln, lerr := net.FileListener(f) // a duplicate: f is closed here
		_ = f.Close()
		if lerr == nil {
			if _, ok := ln.(fileListener); !ok {
				_ = ln.Close()
				lerr = errors.New("not a stream listener")
			}
		}
		if lerr != nil {
			if err == nil {
				err = fmt.Errorf("socket activation: descriptor %d is not a TCP or Unix stream listener: %w", 3+i, lerr)
			}
			continue
		}
		lns, names = append(lns, ln), append(names, f.Name())
	}
	if err != nil {
		closeAll(lns)
		return nil, nil, err
	}
	return lns, names, nil
}

// fileListener is a listener whose socket can be duplicated, for a
// successor: *net.TCPListener and *net.UnixListener.
type fileListener interface {
	net.Listener
	File() (*os.File, error)
}

// served returns the listeners to serve: those named for WebSocket
// wrapped for the engine. lns themselves are kept for an upgrade.
func served(lns []net.Listener, names []string) []net.Listener {
	out := make([]net.Listener, len(lns))
	for i, ln := range lns {
		switch scheme, path := ParseListenerName(names[i]); scheme {
		case "ws":
			out[i] = engine.WebSocketListener(ln, path)
		case "wss":
			out[i] = engine.WebSocketTLSListener(ln, path)
		default:
			out[i] = ln
		}
	}
	return out
}

// listenerURL is the address of a listener named name, as clients dial
// it: "ws://127.0.0.1:8080/rpc" for a WebSocket one, "unix:///path" for a
// Unix socket.
func listenerURL(ln net.Listener, name string) string {
	if scheme, path := ParseListenerName(name); scheme != "" {
		return fmt.Sprintf("%s://%s%s", scheme, ln.Addr(), path)
	}
	if a := ln.Addr(); a.Network() == "unix" {
		return "unix://" + a.String()
	}
	return ln.Addr().String()
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		_ = ln.Close()
	}
}
