package main

// This file is the TLS side of the load generator: echo on a goroutine per
// connection over crypto/tls, and full handshakes per second.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// streams is the state the echo goroutines share.
type streams struct {
	size int
	tmpl []byte
	base time.Time
	meter
}

func (s *streams) now() int64 { return int64(time.Since(s.base)) }

// runStream is echo over TLS: each connection's goroutine reads what has
// arrived (a bufio.Reader of 16 KiB), records the frames' round trips and
// writes one new frame for each in one Write, keeping the pipeline full.
func runStream(o options) (*report.LoadResult, error) {
	tmpl, err := wire.EchoFrame(o.size)
	if err != nil {
		return nil, err
	}
	s := &streams{size: o.size, tmpl: tmpl, base: time.Now(), meter: meter{hist: report.NewHist()}}
	conns := make([]net.Conn, o.conns)
	if err := dialFramed(o, o.conns, func(i int, nc net.Conn) error { conns[i] = nc; return nil }); err != nil {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, err
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.echo(c, o.pipeline)
		}()
	}
	res := &report.LoadResult{Mode: o.mode, Impl: o.impl, Conns: o.conns, Size: o.size, Pipeline: o.pipeline}
	s.measure(o, res)
	time.Sleep(50 * time.Millisecond) // let what is in flight arrive
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
	res.Errors = s.errs.Load()
	res.Latency = report.Summarize(s.hist)
	if res.Frames == 0 {
		return nil, errors.New("no echo came back")
	}
	return res, nil
}

// echo runs one connection until the phase is phaseStop and its
// connection closes.
func (s *streams) echo(c net.Conn, pipeline int) {
	var out []byte
	stamp := func(now int64) {
		out = append(out, s.tmpl...)
		wire.PutDigits(out[len(out)-s.size+wire.TimeOff:len(out)-s.size+wire.TimeOff+wire.TimeLen], uint64(now))
	}
	for range pipeline {
		stamp(s.now())
	}
	if _, err := c.Write(out); err != nil {
		s.errs.Add(1)
		return
	}
	r := bufio.NewReaderSize(c, 16<<10)
	for {
		if _, err := r.Peek(s.size); err != nil {
			if s.phase.Load() != phaseStop {
				s.errs.Add(1)
			}
			return
		}
		n := r.Buffered() / s.size * s.size
		b, _ := r.Peek(n)
		now := s.now()
		ph := s.phase.Load()
		out = out[:0]
		measured := 0
		if ph == phaseMeasure {
			s.mu.Lock()
		}
		for i := 0; i < n; i += s.size {
			t, ok := wire.Digits(b[i+wire.TimeOff : i+wire.TimeOff+wire.TimeLen])
			if !ok || b[i] != '0' {
				s.errs.Add(1)
				continue
			}
			if ph == phaseMeasure {
				report.Record(s.hist, now-int64(t))
				measured++
			}
			if ph != phaseStop {
				stamp(now)
			}
		}
		if ph == phaseMeasure {
			s.mu.Unlock()
			s.frames.Add(int64(measured))
		}
		_, _ = r.Discard(n)
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				if s.phase.Load() != phaseStop {
					s.errs.Add(1)
				}
				return
			}
		}
	}
}

// runHandshake measures full TLS handshakes (-mode handshake), or new
// connections over any transport (-mode connect): o.conns workers, each in
// a loop of a new connection (from the sources in turn), a full handshake
// over TLS (no session cache), the -2 frame, one echo, and a close (a
// reset). The latency is that of the whole cycle; frames are cycles.
func runHandshake(o options) (*report.LoadResult, error) {
	tmpl, err := wire.EchoFrame(o.size)
	if err != nil {
		return nil, err
	}
	srcs := o.sources
	if len(srcs) == 0 {
		srcs = []string{""}
	}
	dialers := make([]*net.Dialer, len(srcs))
	for i, src := range srcs {
		if dialers[i], err = dial.Dialer(src, o.timeout); err != nil {
			return nil, err
		}
	}
	v := via(o.transport)
	if v.TLS == nil && o.mode == "handshake" {
		return nil, fmt.Errorf("-mode handshake needs a TLS server (-transport tls); -mode connect takes any")
	}
	want := wire.SizeFrame(o.size)
	s := &streams{size: o.size, base: time.Now(), meter: meter{hist: report.NewHist()}}
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for k := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make([]byte, o.size)
			for j := k; s.phase.Load() != phaseStop; j += o.conns {
				t0 := s.now()
				err := cycle(dialers[j%len(dialers)], o.addr, want, tmpl, got, v)
				if err != nil {
					if s.phase.Load() != phaseStop {
						s.errs.Add(1)
						firstErr.CompareAndSwap(nil, &err)
					}
					continue
				}
				if s.phase.Load() == phaseMeasure {
					t1 := s.now()
					s.mu.Lock()
					report.Record(s.hist, t1-t0)
					s.mu.Unlock()
					s.frames.Add(1)
				}
			}
		}()
	}
	res := &report.LoadResult{Mode: o.mode, Impl: o.impl, Conns: o.conns, Size: o.size}
	s.measure(o, res)
	wg.Wait()
	res.Errors = s.errs.Load()
	res.Latency = report.Summarize(s.hist)
	if res.Frames == 0 {
		if e := firstErr.Load(); e != nil {
			return nil, fmt.Errorf("no handshake completed: %w", *e)
		}
		return nil, errors.New("no handshake completed")
	}
	return res, nil
}

// cycle is one connection of runHandshake.
func cycle(d *net.Dialer, addr string, want, echo, got []byte, v dial.Via) error {
	nc, err := dial.OneVia(d, addr, want, v)
	if err != nil {
		return err
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(d.Timeout))
	if _, err := nc.Write(echo); err != nil {
		return err
	}
	if _, err := io.ReadFull(nc, got); err != nil {
		return err
	}
	if !bytes.Equal(got, echo) {
		return fmt.Errorf("echo is %.40q", got)
	}
	return nil
}
