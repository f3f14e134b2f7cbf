package main

import (
	"net"
	"strconv"
	"strings"
)

// addrForms is what --addr takes, for the messages that reject one.
const addrForms = "host:port, tcp://host:port, tls://host:port, ws://host:port/path, wss://host:port/path or unix:///path"

// checkAddr rejects an --addr value the engine could not use, as a usage
// error in one sentence, before anything is dialed or bound. listening
// allows port 0 (a free port); a dial needs a port from 1 to 65535. Host
// names are left to the resolver: a name that does not resolve is a failure
// of the moment, not of the command line.
func checkAddr(addr string, listening bool) error {
	network, rest, ok := strings.Cut(addr, "://")
	if !ok {
		network, rest = "tcp", addr
	}
	switch network {
	case "unix":
		if rest == "" {
			return usagef("--addr %q has no socket path (want unix:///path)", addr)
		}
		return nil
	case "ws", "wss":
		return checkWSAddr(addr, listening)
	case "tcp", "tcp4", "tcp6", "tls":
	default:
		return usagef("--addr %q: unsupported scheme %q (want %s)", addr, network, addrForms)
	}
	_, port, err := net.SplitHostPort(rest)
	if err != nil {
		return usagef("--addr %q is not of the form %s", addr, addrForms)
	}
	return checkPort(addr, port, listening)
}

// checkPort rejects the port of addr unless it is from 1 (0 when
// listening) to 65535.
func checkPort(addr, port string, listening bool) error {
	lowest := 1
	if listening {
		lowest = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < lowest || n > 65535 {
		return usagef("--addr %q: the port must be a number from %d to 65535", addr, lowest)
	}
	return nil
}
