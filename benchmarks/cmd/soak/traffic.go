// This file holds the soak's traffic: what each kind of peer does and
// how it counts what it receives.

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
)

// rawObject encodes as itself: the echo of a call's data.
type rawObject []byte

func (o rawObject) MarshalJSON() ([]byte, error) { return o, nil }

func seqOf(data []byte) int64 {
	var m struct{ Seq int64 }
	if codec.Unmarshal(data, &m) != nil {
		return -1
	}
	return m.Seq
}

// saw counts a broadcast or a direct send with sequence number seq.
func (p *peer) saw(broadcast bool, seq int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if broadcast {
		if p.bFirst < 0 {
			p.bFirst = seq
		}
		p.bLast = max(p.bLast, seq)
		p.bGot++
		return
	}
	p.dLast = max(p.dLast, seq)
	p.dGot++
}

// callUp is a healthy peer's calls to the server.
func (s *soak) callUp(ctx context.Context, p *peer) {
	t := time.NewTicker(s.cfg.callEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		began := time.Now()
		var resp struct{ N int }
		err := p.cl.Call(cctx, opEcho, map[string]int{"n": n}, &resp)
		cancel()
		switch {
		case err == nil && resp.N == n:
			s.record(&s.up, time.Since(began))
			s.callsUp.Add(1)
		case ctx.Err() != nil:
			return
		default:
			if err == nil {
				err = fmt.Errorf("reply %d to call %d", resp.N, n)
			}
			s.errsUp.Add(1)
			s.noteErr("call to the server", err)
		}
	}
}

// callDown calls the healthy peers from the server, in turn.
func (s *soak) callDown(ctx context.Context, k int) {
	t := time.NewTicker(s.cfg.downEvery)
	defer t.Stop()
	for n := k; ; n += s.cfg.downCallers {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := s.peers[n%len(s.peers)]
		id := p.id.Load()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		began := time.Now()
		var resp struct{ N int }
		err := s.srv.Call(cctx, id, opPeerEcho, map[string]int{"n": n}, &resp)
		cancel()
		switch {
		case err == nil && resp.N == n:
			s.record(&s.down, time.Since(began))
			s.callsDown.Add(1)
		case ctx.Err() != nil:
			return
		default:
			if err == nil {
				err = fmt.Errorf("reply %d to call %d", resp.N, n)
			}
			s.errsDown.Add(1)
			s.noteErr("call to a healthy peer", err)
		}
	}
}

// broadcast sends numbered frames to every connection.
func (s *soak) broadcast(ctx context.Context) {
	pad := strings.Repeat("b", s.cfg.padding)
	t := time.NewTicker(s.cfg.broadcastEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := s.broadcasts.Load()
		if err := s.srv.SendAll(opBroadcast, map[string]any{"seq": n, "pad": pad}); err != nil {
			s.bcastErrs.Add(1)
			s.noteErr("broadcast", err)
			continue
		}
		s.broadcasts.Add(1)
	}
}

// direct sends each healthy peer its own numbered frames.
func (s *soak) direct(ctx context.Context) {
	t := time.NewTicker(s.cfg.directEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range s.peers {
			n := p.dSent.Load()
			if err := s.srv.Send(p.id.Load(), opDirect, map[string]int64{"seq": n}); err != nil {
				s.directErrs.Add(1)
				s.noteErr("direct send", err)
				continue
			}
			p.dSent.Add(1)
		}
	}
}

// churn connects, calls once and closes, over and over.
func (s *soak) churn(ctx context.Context, d *engine.Dialer) {
	t := time.NewTicker(s.cfg.churnEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			cl, err := d.Dial(cctx, s.addr)
			if err != nil {
				return err
			}
			defer func() {
				_ = cl.Close()
				<-cl.Done()
			}()
			return cl.Call(cctx, opEcho, map[string]int{"n": 1}, nil)
		}()
		switch {
		case err == nil:
			s.churnCycles.Add(1)
		case ctx.Err() != nil:
			return
		default:
			s.churnErrs.Add(1)
			s.noteErr("churn", err)
		}
	}
}

// slowPeer holds a connection that reads the -2 frame and nothing more,
// until the server closes it or its life ends, then starts another.
func (s *soak) slowPeer(ctx context.Context) {
	for ctx.Err() == nil {
		nc, err := net.DialTimeout("tcp", s.addr, 10*time.Second)
		if err != nil {
			s.noteErr("slow peer dial", err)
			return
		}
		tc := nc.(*net.TCPConn)
		_ = tc.SetReadBuffer(4 << 10)
		closed := make(chan struct{})
		s.reasonMu.Lock()
		s.watch[nc.LocalAddr().String()] = closed
		s.reasonMu.Unlock()
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(nc, make([]byte, s.cfg.size)); err != nil {
			s.noteErr("slow peer's -2 frame", err)
		}
		life := time.NewTimer(s.cfg.slowLife)
		select {
		case <-closed:
			s.slowClosed.Add(1)
		case <-life.C:
		case <-ctx.Done():
		}
		life.Stop()
		_ = tc.SetLinger(0) // its unread backlog would hold the socket otherwise
		_ = nc.Close()
		s.reasonMu.Lock()
		delete(s.watch, nc.LocalAddr().String())
		s.reasonMu.Unlock()
		s.slowCycles.Add(1)
	}
}

// settle waits until every healthy peer got what the server sent it, or
// until d, and returns the frames they lost.
func (s *soak) settle(d time.Duration) int64 {
	deadline := time.Now().Add(d)
	sent := s.broadcasts.Load()
	for {
		var missing int64
		for _, p := range s.peers {
			p.mu.Lock()
			if p.bFirst >= 0 {
				missing += sent - p.bFirst - p.bGot
			}
			missing += p.dSent.Load() - p.dGot
			p.mu.Unlock()
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(20 * time.Millisecond) // a poll of counters, at the end of a run
	}
}

// waitBaseline waits until descriptors and goroutines are back to the
// baseline, or d, and returns them.
func waitBaseline(fds, g int, d time.Duration) (int, int) {
	deadline := time.Now().Add(d)
	for {
		f, _ := countFDs()
		n := runtime.NumGoroutine()
		if f <= fds && n <= g+2 || time.Now().After(deadline) {
			return f, n
		}
		time.Sleep(50 * time.Millisecond)
	}
}
