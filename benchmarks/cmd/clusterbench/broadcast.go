package main

// This file holds the broadcast measurement: a gnet client on one event
// loop that holds every connection, spread over the nodes, and counts the
// frames of the current round without decoding JSON (package wire).

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// counter is the client's event handler: it counts opcode-1 frames of the
// current round and reports when the last connection has one.
type counter struct {
	gnet.BuiltinEventEngine
	size   int
	base   time.Time
	round  atomic.Uint64
	got    atomic.Int64
	want   int64
	done   chan int64 // when the round's last frame arrived, since base
	errs   atomic.Int64
	closed atomic.Bool // the client is stopping: closes are expected
}

func (c *counter) OnTraffic(conn gnet.Conn) gnet.Action {
	b, err := conn.Next(conn.InboundBuffered() / c.size * c.size) // whole frames only
	if err != nil || len(b) == 0 {
		return gnet.None
	}
	now := int64(time.Since(c.base))
	for ; len(b) >= c.size; b = b[c.size:] {
		r, ok := wire.Digits(b[wire.RoundOff : wire.RoundOff+wire.RoundLen])
		switch {
		case b[0] != '1' || !ok:
			c.errs.Add(1)
		case r == c.round.Load() && c.got.Add(1) == c.want:
			select {
			case c.done <- now:
			default:
			}
		}
	}
	return gnet.None
}

func (c *counter) OnClose(gnet.Conn, error) gnet.Action {
	if !c.closed.Load() {
		c.errs.Add(1)
	}
	return gnet.None
}

// broadcastOnce starts nodes servers (a cluster when nodes > 1), connects
// -conns connections spread over them, and returns the median time, in
// µs, until the last connection had a round's frame.
func broadcastOnce(o options, nodes int) (float64, error) {
	var procs []*server
	defer func() { stopAll(procs) }()
	var addrs []string
	if nodes == 1 {
		s, err := startServer(o)
		if err != nil {
			return 0, err
		}
		procs, addrs = append(procs, s), []string{s.addr}
	} else {
		bus, err := startNATS(o)
		if err != nil {
			return 0, err
		}
		procs = append(procs, bus)
		var members []*server
		for i := range nodes {
			s, err := startServer(o, "--cluster", bus.url, "--node", fmt.Sprintf("b%d", i+1))
			if err != nil {
				return 0, err
			}
			procs, members, addrs = append(procs, s), append(members, s), append(addrs, s.addr)
		}
		// Each node knows the others and the NATS process's node.
		up := regexp.MustCompile(`msg="simplerpc cluster: node up"`)
		for _, s := range members {
			for range nodes {
				if err := s.waitLine(up, o.timeout); err != nil {
					return 0, err
				}
			}
		}
	}

	c := &counter{size: o.size, base: time.Now(), want: int64(o.conns), done: make(chan int64, 1)}
	cli, err := gnet.NewClient(c, gnet.WithNumEventLoop(1), gnet.WithReadBufferCap(64<<10),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay), gnet.WithLogLevel(logging.FatalLevel))
	if err != nil {
		return 0, err
	}
	if err := cli.Start(); err != nil {
		return 0, err
	}
	defer func() {
		c.closed.Store(true)
		_ = cli.Stop()
	}()
	var first gnet.Conn
	per := o.conns / nodes
	for i, addr := range addrs {
		n := per
		if i == 0 {
			n = o.conns - per*(nodes-1)
		}
		conns := make([]gnet.Conn, n)
		err := dial.Many(addr, n, 64, o.sources, wire.SizeFrame(o.size), o.timeout, func(j int, nc net.Conn) error {
			gc, err := cli.Enroll(nc)
			conns[j] = gc
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("connect to %s: %w", addr, err)
		}
		if i == 0 {
			first = conns[0]
		}
	}
	return rounds(o, c, first)
}

// rounds runs 2 unmeasured and -rounds measured broadcast rounds from
// conn and returns the median round time, in µs.
func rounds(o options, c *counter, conn gnet.Conn) (float64, error) {
	bf, err := wire.BroadcastFrame(o.size)
	if err != nil {
		return 0, err
	}
	const warm = 2
	h := report.NewHist()
	for k := range warm + o.rounds {
		round := uint64(k + 1)
		c.got.Store(0)
		c.round.Store(round)
		frame := append([]byte(nil), bf...)
		t0 := int64(time.Since(c.base))
		wire.PutDigits(frame[wire.TimeOff:wire.TimeOff+wire.TimeLen], uint64(t0))
		wire.PutDigits(frame[wire.RoundOff:wire.RoundOff+wire.RoundLen], round)
		if err := conn.AsyncWrite(frame, nil); err != nil {
			return 0, err
		}
		select {
		case t1 := <-c.done:
			if k >= warm {
				report.Record(h, t1-t0)
			}
		case <-time.After(o.timeout):
			return 0, fmt.Errorf("round %d: %d of %d connections got the frame within %v", round, c.got.Load(), c.want, o.timeout)
		}
		time.Sleep(20 * time.Millisecond) // the servers settle between rounds, as loadgen's do
	}
	if n := c.errs.Load(); n > 0 {
		return 0, errors.New("the client saw bad frames or lost connections")
	}
	return float64(h.ValueAtQuantile(50)) / 1e3, nil
}
