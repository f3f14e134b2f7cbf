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

// The metrics HTTP server's bounds: a scraper that never finishes its
// request, never reads the answer or keeps an idle connection open is
// dropped, and at most metricsMaxConns connections are held at once; more
// wait in the kernel's accept queue, taking none of the process's file
// descriptors, which the RPC connections need.
const (
	metricsHeaderTimeout = 5 * time.Second
	metricsReadTimeout   = 10 * time.Second
	metricsIdleTimeout   = 30 * time.Second
	// A CPU profile or trace runs ?seconds=N (30 by default) before it
	// answers: with --pprof the write bound leaves room for a minute.
	metricsWriteTimeout      = 30 * time.Second
	metricsPprofWriteTimeout = 90 * time.Second
	metricsMaxConns          = 64
)

// metricsServer serves /metrics, and with --pprof /debug/pprof/, on a
// listener of its own.
type metricsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan error // Serve's result
}

// checkMetricsAddr rejects a --metrics-addr that is malformed or the
// protocol's own address.
func checkMetricsAddr(addr, protoAddr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--metrics-addr %q is not of the form host:port", addr)
	}
	if port != "0" && (addr == protoAddr || "tcp://"+addr == protoAddr || "tls://"+addr == protoAddr) {
		return usagef("--metrics-addr %q is the protocol's --addr: the metrics need an address of their own", addr)
	}
	return nil
}

// metricsListenAddr is the address --metrics-addr binds: a host-less
// ":PORT" binds loopback (127.0.0.1), not every interface; 0.0.0.0:PORT
// or [::]:PORT asks for every interface.
func metricsListenAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// startMetrics registers srv's metrics, with the Go and process
// collectors, on a registry of its own and serves them on addr, with the
// profiles when pprof is set (serve --pprof), through a mux of its own
// (not http.DefaultServeMux).
func startMetrics(log *slog.Logger, srv *engine.Server, addr string, pprofOn bool) (*metricsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := metrics.Register(reg, srv, metrics.WithOpcodes(opEcho, opBroadcast)); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	paths, write := "/metrics", metricsWriteTimeout
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		paths, write = "/metrics /debug/pprof/", metricsPprofWriteTimeout
	}
	ln, err := net.Listen("tcp", metricsListenAddr(addr))
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	m := &metricsServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: metricsHeaderTimeout,
			ReadTimeout:       metricsReadTimeout,
			WriteTimeout:      write,
			IdleTimeout:       metricsIdleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   newCappedListener(ln, metricsMaxConns),
		done: make(chan error, 1),
	}
	go func() { m.done <- m.srv.Serve(m.ln) }()
	log.Info("metrics listening", "addr", ln.Addr().String(), "paths", paths, "max_conns", metricsMaxConns)
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
