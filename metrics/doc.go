// Package metrics exports a simplerpc server's counters to Prometheus. It
// is a module of its own, so that the library's users who do not want
// Prometheus never download it.
//
//	reg := prometheus.NewRegistry()
//	if err := metrics.Register(reg, srv, metrics.WithOpcodes(0, 1, 2)); err != nil {
//		return err
//	}
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is named simplerpc_*, and docs/OPERATIONS.md says what
// each means, which alerts to set on them, and where the Grafana dashboard
// that uses them is (deploy/grafana/simplerpc.json).
//
// # Cost
//
// The counters are the engine's own ([engine.Server.Stats]), kept per
// event loop whether this package is used or not; a scrape sums them and
// queues one task to each loop for what only the loop can read
// ([engine.Host.Backlog]). No goroutine is started. One-way frames cost
// nothing more; each call costs two clock reads and a histogram
// observation, in a router middleware for the calls peers make and in the
// server's call observer for the calls it makes.
//
// Labels are bounded: opcodes are the protocol's and those listed with
// [WithOpcodes], the rest "other"; reasons are fixed sets, with "other"
// for failure reasons of the application's own.
//
// # Concurrency
//
// [Register] may be called before or after the server starts; scrapes may
// run concurrently with each other and with the server.
package metrics
