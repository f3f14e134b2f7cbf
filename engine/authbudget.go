// This file holds the per-address budget of authentication failures
// ([WithAuthFailureLimit]) and their summary log line: an address that
// spent its budget has its credentials refused without the authenticator
// running, until the budget refills.

package engine

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// authBudgetPrune is the number of addresses past which a failure first
// forgets the addresses whose budget has refilled; authBudgetMax bounds
// them: past it, an address not yet known is not limited (the budget
// fails open rather than lock out addresses it cannot remember).
const (
	authBudgetPrune = 4096
	authBudgetMax   = 1 << 16
)

// authBudget is the failures each address has spent: a token bucket per
// address of burst failures, one given back every `every`. An address is
// remembered only while it has failures not given back. It is safe for
// concurrent use.
type authBudget struct {
	mu    sync.Mutex // guards addrs
	addrs map[netip.Addr]*authSpent
}

// authSpent is what one address spent, as of at.
type authSpent struct {
	spent float64
	at    time.Time
}

// left returns e's failures not yet given back at now.
func (e *authSpent) left(now time.Time, every time.Duration) float64 {
	return max(0, e.spent-float64(now.Sub(e.at))/float64(every))
}

// take counts an attempt to authenticate from a and reports whether it may
// run: false once a has spent burst failures not given back. The attempt
// counts as a failure until give says it succeeded. burst 0 allows all.
func (b *authBudget) take(a net.Addr, burst int, every time.Duration, now time.Time) bool {
	ip, ok := addrOf(a)
	if burst <= 0 || !ok {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.addrs[ip]
	if e == nil {
		if len(b.addrs) >= authBudgetPrune {
			b.prune(now, every)
		}
		if len(b.addrs) >= authBudgetMax {
			return true
		}
		if b.addrs == nil {
			b.addrs = make(map[netip.Addr]*authSpent)
		}
		e = &authSpent{at: now}
		b.addrs[ip] = e
	}
	left := e.left(now, every)
	if left+1 > float64(burst) {
		return false
	}
	e.spent, e.at = left+1, now
	return true
}

// give takes back an attempt from a that succeeded.
func (b *authBudget) give(a net.Addr, every time.Duration, now time.Time) {
	ip, ok := addrOf(a)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.addrs[ip]
	if e == nil {
		return
	}
	e.spent, e.at = max(0, e.left(now, every)-1), now
	if e.spent == 0 {
		delete(b.addrs, ip)
	}
}

// prune forgets the addresses whose budget has refilled.
func (b *authBudget) prune(now time.Time, every time.Duration) {
	for ip, e := range b.addrs {
		if e.left(now, every) == 0 {
			delete(b.addrs, ip)
		}
	}
}
