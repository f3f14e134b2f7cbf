// This file holds the successor's side of a handover: connections adopted
// from a predecessor's Unix socket into this server's loops with their
// state, and the replay of the bytes the predecessor had read but not
// handled, before any new ones.

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// Adopt takes the connections a predecessor hands over on uc
// ([Server.HandOver]) into this server's loops, and returns how many it
// took once the predecessor says it has sent them all. Call it before
// [Server.StartOn] (it starts the event loops, not the acceptors), so
// that every adopted net id is known before this server makes one: its
// own ids then start above the predecessor's (with [WithBackend] they are
// the backend's, unique across its servers). It starts the backend, as
// StartOn does. Each connection keeps its net id, its
// message sizes, its groups and identity, and gets the application's
// state back through the restore hook of [WithHandover]; the bytes the
// predecessor had read but not handled are read first, so a frame split
// across the handover completes; the frames the predecessor's sends to it
// made after it moved are written to it as they come, before anything
// this server sends it later (to one not live yet, before anything at
// all), and all before Adopt returns. A send to all or to a group this
// server makes while it adopts reaches the connections it adopts later
// too, once (they were the predecessor's when it was made), before
// anything else of this server's; a send to a net id not adopted yet fails
// with [ErrUnknownConn]. No -2 frame is sent (the peer knows the
// size), and no connect callback runs: the connection is not new; its
// disconnect callback runs here when it closes. A connection that had not
// authenticated yet ([WithAuth]) waits for its credentials again, with a
// new deadline, and is admitted (its connect callback runs) here. One
// whose net id is in use, or over [WithMaxConns], is closed; the restore
// hook gets nil from a predecessor without a save hook. This server's
// counters ([Server.Stats]) go on from the predecessor's, which counted
// the connections it handed over under [DisconnectHandedOver]; the adopted
// ones count in Accepted here.
//
// If ctx ends or uc fails first, the connections already acknowledged
// stay with this server, and the error says why. It is safe for
// concurrent use, but a server adopts once.
func (s *Server) Adopt(ctx context.Context, uc *net.UnixConn) (int, error) {
	if err := s.startBackend(ctx); err != nil {
		return 0, err
	}
	if err := s.startForAdopt(); err != nil {
		return 0, err
	}
	stop := context.AfterFunc(ctx, func() { _ = uc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var wmu sync.Mutex // acknowledgements come from the batches' waiters too
	ack := func(n uint32) error {
		wmu.Lock()
		defer wmu.Unlock()
		return writeAck(uc, n)
	}
	if err := ack(helloAck); err != nil {
		return 0, fmt.Errorf("engine: adopt: %w", err)
	}
	r := newHandReader(uc)
	defer r.Close()
	carry := &adoptCarry{pending: make(map[uint64][][]byte), live: make(map[uint64]*conn), done: make(map[*loop]int64)}
	s.side.adopt.Store(carry)
	defer s.side.adopt.Store(nil)
	defer carry.end()
	// Enrolling waits for the loop to open the connection: a few at once
	// keep the loops busy (gnet's client balancer is safe for that).
	var wg sync.WaitGroup
	sem := make(chan struct{}, adoptWorkers)
	defer wg.Wait()
	n := 0
	for {
		b, err := r.Next()
		if err == nil {
			err = ack(uint32(len(b.Conns))) // at most maxHandBatch
			if err != nil {
				for _, rc := range b.Conns {
					closeFDs([]int{rc.FD})
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			wg.Wait()
			_ = s.adoptBarrier(context.Background())
			return n, fmt.Errorf("engine: adopt: after %d connections: %w", n, err)
		}
		s.reserveID(b.Next)
		carry.deliver(b.Frames, b.To)
		var batch sync.WaitGroup
		for _, rc := range b.Conns {
			sem <- struct{}{}
			wg.Add(1)
			batch.Add(1)
			go func() {
				defer func() { <-sem; batch.Done(); wg.Done() }()
				_ = s.adoptConn(context.Background(), rc)
			}()
		}
		if k := len(b.Conns); k > 0 {
			// The predecessor sets more connections on their way as these
			// are live: what it stops reading waits only for these.
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch.Wait()
				_ = ack(liveAck | uint32(k)) // k <= maxHandBatch
			}()
		}
		n += len(b.Conns)
		if b.End {
			var base Stats
			if len(b.Stats) > 0 && codec.Unmarshal(b.Stats, &base) == nil {
				s.side.stats.base.Store(&base) // this server's counters go on from the predecessor's
			}
			wg.Wait()
			_ = s.adoptBarrier(context.Background())
			return n, nil
		}
	}
}

// adoptWorkers is how many connections Adopt enrolls at once.
const adoptWorkers = 256

// startForAdopt starts the event loops of a new server for Adopt; StartOn
// then starts the acceptors.
func (s *Server) startForAdopt() error {
	if !s.state.CompareAndSwap(stateNew, stateRunning) {
		return errors.New("engine: adopt: the server has started: adopt before StartOn")
	}
	cli, err := startLoops(&serverEvents{s: s}, &s.side)
	if err != nil {
		s.state.Store(stateNew)
		return err
	}
	s.cli = cli
	if s.side.cfg.workers > 0 {
		s.side.pool = newPool(s.side.cfg.workers)
	}
	s.hand.loopsOnly.Store(true)
	return nil
}

// reserveID makes the server's own net ids start above id.
func (s *Server) reserveID(id uint64) {
	for {
		cur := s.nextID.Load()
		if cur >= id || s.nextID.CompareAndSwap(cur, id) {
			return
		}
	}
}

// adoptConn enrolls one handed connection, its state attached for
// readyAdopted. Its descriptor is closed here (gnet takes a copy). gnet's
// EnrollContext takes no context: it waits for the loop to open the
// connection, for ever if the loop no longer runs. With a ctx that can
// end, it runs on a goroutine of its own, and adoptConn returns ctx's error
// when ctx ends first: the connection then opens when the loop runs again
// (if it ever does; that goroutine waits for it).
func (s *Server) adoptConn(ctx context.Context, rc handedConn) error {
	if ctx.Done() == nil {
		s.enrollHanded(rc)
		return nil
	}
	if err := ctx.Err(); err != nil {
		closeFDs([]int{rc.FD})
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.enrollHanded(rc)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enrollHanded is adoptConn's work.
func (s *Server) enrollHanded(rc handedConn) {
	f := os.NewFile(uintptr(rc.FD), "handed-over")
	nc, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		s.side.cfg.logger.Warn("simplerpc: adopt: not a socket", "conn", rc.ID, "err", err)
		return
	}
	s.reserveID(rc.ID)
	c := newConn(&s.side, s, 0)
	c.setRemote(nc.RemoteAddr())
	c.extra().hand = &handState{adopted: &rc}
	switch {
	case rc.WS != nil:
		cfg := &s.side.cfg
		c.extra().newLayer = resumedWS(&wslayer.Config{Path: rc.WS.Path, Subprotocol: Subprotocol, Origins: cfg.ws.origins,
			Binary: rc.WS.Binary, MaxHeader: cfg.ws.maxHeader, Timeout: cfg.handshakeTimeout}, rc.WS, rc.Unread)
	case len(rc.Unread) > 0:
		c.extra().newLayer = newReplay
	}
	if l := s.addrLimits; l != nil {
		l.count(c.remoteAddr()) // released when it closes, as an accepted one
	}
	if _, err := s.cli.EnrollContext(nc, c); err != nil {
		if l := s.addrLimits; l != nil {
			l.release(c.remoteAddr())
		}
		_ = nc.Close()
		s.side.cfg.logger.Warn("simplerpc: adopt: enroll failed", "conn", rc.ID, "err", err)
	}
}

// adoptBarrier returns once every loop has run what is queued on it: the
// connections enrolled so far are ready (their replay's first round too);
// or with ctx's error once ctx ends, a loop that no longer runs holding it.
func (s *Server) adoptBarrier(ctx context.Context) error {
	loops := s.side.eachLoop()
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		if l.enqueue(task{kind: taskFunc, fn: wg.Done}, nil) != nil {
			wg.Done()
		}
	}
	if ctx.Done() == nil {
		wg.Wait()
		return nil
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// adopting returns the state c is adopted with, or nil for a new
// connection. On its loop.
func (c *conn) adopting() *handedConn {
	if x := c.x.Load(); x != nil && x.hand != nil {
		return x.hand.adopted
	}
	return nil
}

// readyAdopted makes an adopted connection ready with the state it came
// with, in place of the -2 frame and the connect callback of a new one.
// On its loop.
func (s *Server) readyAdopted(c *conn, rc *handedConn) bool {
	x := c.extra()
	x.hand = nil
	c.id = rc.ID
	c.inSize = int32(rc.In) // the predecessor's, within the size bounds
	c.setOutSize(rc.Out)
	x.calls.continueFrom(rc.Calls) // a late reply to a predecessor's call matches none of ours
	c.loop.add(c)
	if s.conns.load(c.id) != nil {
		id := c.id
		c.id = s.newID() // its close must not unregister the one that has the id
		c.closeNow(fmt.Errorf("%w: adopted net id %d is in use", ErrProtocol, id))
		return true
	}
	if a := s.side.adopt.Load(); a != nil {
		a.ready(c) // what the predecessor sent it after it moved, first
	}
	if restore := s.side.cfg.handRestore; restore != nil {
		var err error
		c.safely("handover restore hook", func() { err = restore(c, rc.App) })
		if err != nil {
			c.closeNow(fmt.Errorf("engine: adopt: restore hook: %w", err))
			return true
		}
	}
	if rc.Waiting {
		s.startAuth(c)
		return true
	}
	if rc.Identity != "" {
		x.valMu.Lock()
		x.identity = rc.Identity
		x.valMu.Unlock()
		s.addIdentity(c, rc.Identity)
	}
	s.conns.store(c)
	for _, g := range rc.Groups {
		if err := s.Group(g).join(c.id); err != nil {
			s.side.cfg.logger.Warn("simplerpc: adopt: group not joined", "conn", c.id, "group", g, "err", err)
		}
	}
	if a := s.side.adopt.Load(); a != nil {
		a.replay(c, rc) // the sends to all this server made meanwhile
	}
	c.reported = true // its disconnect callback runs here
	s.side.cfg.logger.Debug("simplerpc: connection adopted", "conn", c.id, "remote", c.RemoteAddr())
	return true
}

// addIdentity files c under identity for ConnsOf.
func (s *Server) addIdentity(c *conn, identity string) {
	s.identsMu.Lock()
	defer s.identsMu.Unlock()
	if s.idents == nil {
		s.idents = make(identities)
	}
	if s.idents[identity] == nil {
		s.idents[identity] = make(map[uint64]*conn)
	}
	s.idents[identity][c.id] = c
}

// count counts a connection from a without a limit: an adopted one, which
// the predecessor admitted.
func (l *addrLimits) count(a net.Addr) {
	ip, ok := addrOf(a)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addrs == nil {
		l.addrs = make(map[netip.Addr]*addrEntry)
	}
	e := l.addrs[ip]
	if e == nil {
		e = &addrEntry{}
		l.addrs[ip] = e
	}
	e.n++
}

// replayLayer is the layer of an adopted connection that came with bytes
// the predecessor had read but not handled: it hands them to the frame
// reader before what the socket brings, then takes itself away once no
// partial frame is left in its buffer, and the frames are read straight
// from gnet's buffer again.
type replayLayer struct {
	c     *conn
	stash []byte // the predecessor's unread bytes, until the first input
}

func newReplay(c *conn) layer {
	return &replayLayer{c: c, stash: slices.Clone(c.adopting().Unread)}
}

func isReplay(l layer) bool {
	_, ok := l.(*replayLayer)
	return ok
}

// start has the loop read the stash at once, whether or not the socket
// brings anything.
func (r *replayLayer) start(_ func([]byte) error, wake func()) error {
	wake()
	return nil
}

// input passes the stash, then what arrives, to the frame reader. Once a
// round begins with nothing left over, the layer removes itself: traffic
// takes the connection's wire after the pump, so this very round reads
// gnet's buffer directly (what is in it was not consumed here).
func (r *replayLayer) input(plain, in []byte) ([]byte, int, bool, error) {
	if r.stash != nil {
		plain = append(plain, r.stash...)
		r.stash = nil
		return append(plain, in...), len(in), true, nil
	}
	if len(plain) == 0 {
		r.c.x.Load().tl = nil // a layered connection has its connExtra
		return plain, 0, true, nil
	}
	return append(plain, in...), len(in), true, nil
}

func (r *replayLayer) output(dst, p []byte) ([]byte, error) { return append(dst, p...), nil }

func (r *replayLayer) pending() bool { return false }

func (r *replayLayer) stop(err error) error { return err }
