// This file holds the limits per remote address, applied by the acceptor
// before a connection reaches a loop: how many connections one address
// may hold, and how fast it may open new ones.

package engine

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/simplerpc/simplerpc/codec"
)

// addrLimits counts the connections of each remote address and meters how
// fast each opens new ones. Entries live while an address has connections,
// or while its rate bucket is not full again. It is safe for concurrent
// use.
type addrLimits struct {
	max   int        // connections per address, 0 for none
	every rate.Limit // new connections per second per address, 0 for none
	burst int

	mu    sync.Mutex // guards addrs
	addrs map[netip.Addr]*addrEntry
}

type addrEntry struct {
	n       int
	limiter *rate.Limiter
}

// addrOf returns the IP address of a TCP peer, or false for other peers
// (a Unix socket has no address to limit).
func addrOf(a net.Addr) (netip.Addr, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(t.IP)
		return ip.Unmap(), ok
	}
	return netip.Addr{}, false
}

// admit counts a new connection from a, or returns the reason and message
// of its refusal.
func (l *addrLimits) admit(a net.Addr, now time.Time) (refuse int, reason, message string) {
	ip, ok := addrOf(a)
	if !ok {
		return -1, "", ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.addrs[ip]
	if e == nil {
		e = &addrEntry{}
		if l.every > 0 {
			e.limiter = rate.NewLimiter(l.every, l.burst)
		}
		if l.addrs == nil {
			l.addrs = make(map[netip.Addr]*addrEntry)
		}
		l.addrs[ip] = e
	}
	if e.limiter != nil && !e.limiter.AllowN(now, 1) {
		return refuseRate, ReasonRateLimited, "Too many new connections from your address"
	}
	if l.max > 0 && e.n >= l.max {
		return refusePerIP, ReasonAddressFull, "Too many connections from your address"
	}
	e.n++
	return -1, "", ""
}

// release uncounts a connection from a, admitted before.
func (l *addrLimits) release(a net.Addr) {
	ip, ok := addrOf(a)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.addrs[ip]; e != nil {
		e.n--
		if e.n <= 0 && (e.limiter == nil || e.limiter.Tokens() >= float64(l.burst)) {
			delete(l.addrs, ip)
		}
	}
}

// prune forgets addresses with no connection whose bucket is full again:
// the sweep's, so that addresses that came once do not stay for good.
func (l *addrLimits) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ip, e := range l.addrs {
		if e.n <= 0 && (e.limiter == nil || e.limiter.TokensAt(now) >= float64(l.burst)) {
			delete(l.addrs, ip)
		}
	}
}

// refuseAddr answers an accepted connection that its address may not open
// with a failure frame at the server's size, and closes it: a frame to a
// socket just accepted goes to an empty buffer, so the write does not wait.
func (s *Server) refuseAddr(nc net.Conn, which int, reason, message string) {
	s.side.stats.refused[which].Add(1)
	s.side.warnAddr.warn(s.side.cfg.logger, "last", nc.RemoteAddr().String(), "reason", reason)
	if f, err := codec.AppendFailure(nil, s.side.cfg.size, reason, message); err == nil {
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(f)
	}
	_ = nc.Close()
}
