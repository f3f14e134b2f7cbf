package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/metrics"
)

// metricsHeaderTimeout bounds the reading of a scrape's request headers, so
// that a client that never finishes them does not hold a goroutine for
// good.
const metricsHeaderTimeout = 5 * time.Second

// metricsServer serves /metrics and /debug/pprof/ on a listener of its own.
type metricsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error // Serve's result
}

// checkMetricsAddr rejects a --metrics-addr that is malformed or the
// protocol's own address.
func checkMetricsAddr(addr, protoAddr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--metrics-addr %q is not of the form host:port", addr)
	}
	if port != "0" && (addr == protoAddr || "tcp://"+addr == protoAddr || "tls://"+addr == protoAddr) {
		return usagef("--metrics-addr %q is the protocol's --addr: the metrics need an address of their own", addr)
	}
	_ = host
	return nil
}

// startMetrics registers srv's metrics, with the Go and process
// collectors, on a registry of its own and serves them on addr, with the
// profiles, through a mux of its own (not http.DefaultServeMux).
func startMetrics(log *slog.Logger, srv *engine.Server, addr string) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := metrics.Register(reg, srv, metrics.WithOpcodes(opEcho, opBroadcast)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	m := &metricsServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: metricsHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { m.done <- m.srv.Serve(ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String(), "paths", "/metrics /debug/pprof/")
	return m, nil
}

// shutdown stops the metrics server within ctx and waits for Serve.
func (m *metricsServer) shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	err := m.srv.Shutdown(ctx)
	if serr := <-m.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
