// This file holds how a server gets its connections: its own listeners,
// accepted on a goroutine each and handed to the event loops, so that the
// server can serve sockets made elsewhere (a service manager's), outlive
// running out of file descriptors, and judge a peer before a loop sees it.

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// listen opens the listener for addr: "host:port", "tcp://host:port",
// "tcp4://...", "tcp6://..." or "unix:///path". A Unix socket left by an
// earlier run at that path is removed first; any other file there is an
// error.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	network, address, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(address) // a socket left by an earlier run
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("engine: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// splitAddr splits "host:port", "tcp://host:port", "tcp4://", "tcp6://" or
// "unix:///path" into a network and an address for package net.
func splitAddr(addr string) (network, address string, err error) {
	network, address, ok := strings.Cut(addr, "://")
	if !ok {
		network, address = "tcp", addr
	}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return "", "", fmt.Errorf("engine: address %q: unsupported network %q", addr, network)
	}
	if address == "" {
		return "", "", fmt.Errorf("engine: address %q: empty", addr)
	}
	return network, address, nil
}

// acceptLoop accepts connections from ln and hands them to the event loops
// until ln is closed, each with the transport layer of its listener
// (newLayer: WebSocket for a ws:// listener). When the process runs out of file descriptors
// (EMFILE, ENFILE) it backs off, as net/http does, from 5 ms up to 1 s,
// and tries again: the server refuses connections meanwhile instead of
// stopping, and recovers when descriptors free up.
func (s *Server) acceptLoop(ln net.Listener, newLayer func(*conn) layer) {
	defer s.accept.Done()
	cfg := &s.side.cfg
	var backoff time.Duration
	var ips acceptedIPs
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if resume, ok := s.parked(ln, err); ok { // a handover paused accepting
				if resume {
					continue
				}
				return
			}
			if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) && !isTemporary(err) {
				// A listener that fails for good: the server stops, and
				// Serve returns why.
				cfg.logger.Error("simplerpc: accept failed", "addr", ln.Addr().String(), "err", err)
				s.finishAsync(fmt.Errorf("%w: accept on %s: %w", ErrEngineStopped, ln.Addr(), err))
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.side.warnAccept.warn(cfg.logger, "err", err.Error(), "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
			case <-s.stop:
				return
			}
			continue
		}
		backoff = 0
		ips.compact(nc)
		s.enroll(nc, newLayer)
	}
}

// acceptedIPs is what an acceptor shares between the addresses of the
// connections it accepts. gnet's Enroll keeps the accepted net.Conn's two
// addresses for the connection's life, and package net makes each
// address's IP a slice of a 32-byte socket address of its own; an idle
// connection held 64 bytes for two IPs that are, for the local one, nearly
// always the same, and often for the remote one (TestAcceptedIPsShared).
type acceptedIPs struct {
	local, remote net.IP
}

// compact points nc's addresses at the IPs of the connection accepted
// before it when they are equal, else at compact copies that the next
// connections share. The acceptor owns nc until it enrolls it, so no one
// else reads its addresses meanwhile; their values do not change.
func (a *acceptedIPs) compact(nc net.Conn) {
	if la, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		la.IP = share(&a.local, la.IP)
	}
	if ra, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ra.IP = share(&a.remote, ra.IP)
	}
}

// share returns *last if it equals ip, else a compact copy of ip, kept in
// *last for the next connection.
func share(last *net.IP, ip net.IP) net.IP {
	if !last.Equal(ip) || len(*last) != len(ip) {
		*last = append(make(net.IP, 0, len(ip)), ip...)
	}
	return *last
}

// isTemporary reports whether an accept error is one to retry: a
// connection reset or aborted before it was accepted.
func isTemporary(err error) bool {
	return errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN)
}

// enroll hands an accepted connection to an event loop (gnet takes a copy
// of its descriptor and closes nc). The connection's -2 frame, its connect
// callback or its refusal then happen on the loop (serverEvents.OnOpen).
func (s *Server) enroll(nc net.Conn, newLayer func(*conn) layer) {
	if l := s.addrLimits; l != nil {
		if which, reason, msg := l.admit(nc.RemoteAddr(), time.Now()); which >= 0 {
			s.refuseAddr(nc, which, reason, msg)
			return
		}
	}
	c := newConn(&s.side, s, 0)
	c.setRemote(nc.RemoteAddr())
	if newLayer != nil {
		c.extra().newLayer = newLayer
	}
	if _, err := s.cli.EnrollContext(nc, c); err != nil {
		if l := s.addrLimits; l != nil {
			l.release(c.remoteAddr())
		}
		_ = nc.Close()
		s.side.warnAccept.warn(s.side.cfg.logger, "err", err.Error())
	}
}

// finishAsync stops a server whose listener failed, from its acceptor.
func (s *Server) finishAsync(err error) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.side.cfg.grace)
		defer cancel()
		s.runErrOnce(err)
		_ = s.Shutdown(ctx)
	}()
}
