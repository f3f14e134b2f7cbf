package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/metrics"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

// scraped serves a simplerpc server's metrics over HTTP on 127.0.0.1 and
// scrapes them every interval from this same process, so that both the
// collection and the HTTP exposition are paid on the server's core (the
// HTTP client's work too: more than a remote Prometheus would cost).
type scraped struct {
	reg      *prometheus.Registry
	interval time.Duration
	hs       *http.Server
	url      string
	stop     chan struct{}
	done     chan struct{}
	scrapes  int
	lastLen  int
}

func newScraped(interval time.Duration) *scraped {
	return &scraped{reg: prometheus.NewRegistry(), interval: interval,
		stop: make(chan struct{}), done: make(chan struct{})}
}

// instrument registers srv's metrics; it is servers.Config.Instrument.
func (s *scraped) instrument(srv *engine.Server) error {
	return metrics.Register(s.reg, srv, metrics.WithOpcodes(wire.OpEcho, wire.OpBroadcast, wire.OpCall))
}

// start serves /metrics and starts the scraper.
func (s *scraped) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	s.url = fmt.Sprintf("http://%s/metrics", ln.Addr())
	go func() { _ = s.hs.Serve(ln) }()
	go s.scrape()
	return nil
}

func (s *scraped) scrape() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		resp, err := http.Get(s.url)
		if err != nil {
			continue
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		s.scrapes++
		s.lastLen = int(n)
	}
}

// close stops the scraper and the HTTP server.
func (s *scraped) close() error {
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.hs.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
