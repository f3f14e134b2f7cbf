package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeMetrics are the server metrics bench --metrics-url reports, each
// summed over its labels: counters as the change over the run.
var scrapeMetrics = []string{
	"simplerpc_frames_received_total",
	"simplerpc_frames_sent_total",
	"simplerpc_received_bytes_total",
	"simplerpc_sent_bytes_total",
	"simplerpc_connections_accepted_total",
	"simplerpc_connections_refused_total",
	"simplerpc_disconnects_total",
	"simplerpc_failures_sent_total",
	"simplerpc_frames_dropped_total",
	"process_cpu_seconds_total",
}

// checkMetricsURL rejects a --metrics-url that is not an http(s) URL.
func checkMetricsURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--metrics-url %q: want http://host:port/metrics", raw)
	}
	return nil
}

// scrape fetches a Prometheus text exposition from url and returns the sum
// of each metric's samples, by name.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	out := make(map[string]float64, len(fams))
	for name, f := range fams {
		var sum float64
		for _, m := range f.GetMetric() {
			sum += sampleValue(f.GetType(), m)
		}
		out[name] = sum
	}
	return out, nil
}

// sampleValue is a counter's, gauge's or untyped metric's value; other
// types count 0.
func sampleValue(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// metricDeltas returns after less before for the reported metrics that
// after has.
func metricDeltas(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, name := range scrapeMetrics {
		if v, ok := after[name]; ok {
			out[name] = v - before[name]
		}
	}
	return out
}

// writeDeltas prints the deltas as a table.
func writeDeltas(w io.Writer, d map[string]float64) error {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "server metrics\tchange over the run")
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(n, "simplerpc_"), strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", d[n]), "0"), "."))
	}
	return tw.Flush()
}
