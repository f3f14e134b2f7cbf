package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/metrics"
)

// BenchmarkScrape is what one scrape costs a server with 100 connections:
// the collection (Stats, and Backlog's task on the loop) and promhttp's
// encoding, gzipped as Prometheus asks. At one scrape a second, ns/op is
// the share of a core in nanoseconds per second.
func BenchmarkScrape(b *testing.B) {
	const conns = 100
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	srv, err := engine.NewServer(r)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background(), "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, srv, metrics.WithOpcodes(0, 1, 2)); err != nil {
		b.Fatal(err)
	}
	d, err := engine.NewDialer(handler.NewRouter())
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	for range conns {
		cl, err := d.Dial(context.Background(), srv.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		<-cl.Ready()
		if err := cl.Send(0, map[string]int{"n": 1}); err != nil {
			b.Fatal(err)
		}
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
