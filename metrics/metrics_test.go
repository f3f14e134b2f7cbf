package metrics_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/internal/testkit"
	"github.com/simplerpc/simplerpc/metrics"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// testContext returns a context that ends with the test or after
// testkit.Timeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	return testkit.Context(t, testkit.Timeout)
}

// startServer starts a server on 127.0.0.1:0 and shuts it down when the
// test ends.
func startServer(t *testing.T, r *handler.Router, opts ...engine.ServerOption) *engine.Server {
	t.Helper()
	srv, err := engine.NewServer(r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Start(t, srv, "127.0.0.1:0")
}

// scraper scrapes a registry through promhttp, as Prometheus does.
type scraper struct {
	t  *testing.T
	ts *httptest.Server
}

func newScraper(t *testing.T, reg *prometheus.Registry) *scraper {
	ts := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	t.Cleanup(ts.Close)
	return &scraper{t: t, ts: ts}
}

// scrape returns the exposition text and its samples, keyed by the series
// as written: name{label="value",...} with labels in name order.
func (s *scraper) scrape() ([]byte, map[string]float64) {
	s.t.Helper()
	resp, err := http.Get(s.ts.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape: %d %v\n%s", resp.StatusCode, err, body)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			s.t.Fatalf("sample %q: %v", line, err)
		}
		samples[normalize(line[:i])] = v
	}
	return body, samples
}

// normalize sorts the labels of a series by name (promhttp writes le last).
func normalize(s string) string {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return s
	}
	parts := strings.Split(strings.TrimSuffix(s[i+1:], "}"), ",")
	sort.Strings(parts)
	return s[:i] + "{" + strings.Join(parts, ",") + "}"
}

// series names a sample: series("a_total", "reason", "eof").
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	type kv struct{ k, v string }
	var kvs []kv
	for i := 0; i < len(labels); i += 2 {
		kvs = append(kvs, kv{labels[i], labels[i+1]})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
	var b strings.Builder
	b.WriteString(name + "{")
	for i, p := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", p.k, p.v)
	}
	b.WriteByte('}')
	return b.String()
}

// promtool checks an exposition with promlint, the linter that
// `promtool check metrics` runs, from client_golang: no binary needed.
func promtool(t *testing.T, body []byte) {
	t.Helper()
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("the exposition does not lint: %v %+v", err, problems)
	}
}

const size = 256

// liveServer is a server with its metrics registered and scraped over
// HTTP, answering: opcode 0 echoes, call 1 succeeds, call 2 fails with
// ArgumentMissing, call 3 panics.
func liveServer(t *testing.T, opts ...metrics.Option) (*engine.Server, *scraper, chan uint64) {
	t.Helper()
	r := handler.NewRouter()
	r.On(0, func(c handler.Conn, data []byte) error { return c.SendRaw(0, data) })
	r.OnCall(1, func(handler.Conn, []byte) (any, error) { return map[string]int{"ok": 1}, nil })
	r.OnCall(2, func(handler.Conn, []byte) (any, error) {
		return nil, handler.ArgumentMissing("Expected argument 'a' in opcode 2")
	})
	r.OnCall(3, func(handler.Conn, []byte) (any, error) { panic("handler bug") })
	ids := make(chan uint64, 16)
	srv := startServer(t, r, engine.WithMessageSize(size), engine.WithOnConnect(func(c handler.Conn) { ids <- c.ID() }))
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, srv, opts...); err != nil {
		t.Fatal(err)
	}
	return srv, newScraper(t, reg), ids
}

// TestLiveServer serves three clients that echo and call, and is called
// by the server; the scraped values move as they should, and the
// exposition passes promtool.
func TestLiveServer(t *testing.T) {
	t.Parallel()
	const clients, echoes = 3, 10
	srv, s, ids := liveServer(t, metrics.WithOpcodes(0, 1))
	body, before := s.scrape()
	promtool(t, body)
	if before[series("simplerpc_connections_accepted_total")] != 0 || before[series("simplerpc_frames_received_total", "opcode", "0")] != 0 {
		t.Fatalf("fresh server scraped non-zero: %s", body)
	}

	ctx := testContext(t)
	var echoed atomic.Int64
	echoDone := make(chan struct{}, clients*echoes)
	var cls []*engine.Client
	for range clients {
		cr := handler.NewRouter()
		cr.On(0, func(handler.Conn, []byte) error { echoed.Add(1); echoDone <- struct{}{}; return nil })
		cr.OnCall(7, func(handler.Conn, []byte) (any, error) { return nil, nil })
		cl, err := engine.Dial(ctx, srv.Addr().String(), cr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		cls = append(cls, cl)
	}
	var serverIDs []uint64
	for range clients {
		serverIDs = append(serverIDs, <-ids)
	}
	for _, cl := range cls {
		for range echoes {
			if err := cl.Send(0, map[string]int{"n": 1}); err != nil {
				t.Fatal(err)
			}
		}
		for range 5 {
			if err := cl.Call(ctx, 1, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if err := cl.Call(ctx, 2, nil, nil); handler.ReasonOf(err) != handler.ReasonArgumentMissing {
				t.Fatalf("call 2: %v", err)
			}
		}
		if err := cl.Call(ctx, 3, nil, nil); handler.ReasonOf(err) != handler.ReasonInternal {
			t.Fatalf("call 3: %v", err)
		}
		if err := cl.Call(ctx, 9, nil, nil); handler.ReasonOf(err) != handler.ReasonUnknownOpcode {
			t.Fatalf("call 9: %v", err)
		}
	}
	for range clients * echoes {
		select {
		case <-echoDone:
		case <-ctx.Done():
			t.Fatalf("%d of %d echoes", echoed.Load(), clients*echoes)
		}
	}
	for _, id := range serverIDs {
		for range 2 {
			if err := srv.Call(ctx, id, 7, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.Call(ctx, id, 8, nil, nil); handler.ReasonOf(err) != handler.ReasonUnknownOpcode {
			t.Fatalf("server's call 8: %v", err)
		}
	}

	body, after := s.scrape()
	promtool(t, body)
	const calls = 5 + 2 + 1 + 1
	want := map[string]float64{
		series("simplerpc_connections_open"):                                   clients,
		series("simplerpc_connections_accepted_total"):                         clients,
		series("simplerpc_frames_received_total", "opcode", "0"):               clients * echoes,
		series("simplerpc_frames_sent_total", "opcode", "0"):                   clients * echoes,
		series("simplerpc_frames_received_total", "opcode", "1"):               0,
		series("simplerpc_frames_received_total", "opcode", "-3"):              clients * calls,
		series("simplerpc_frames_sent_total", "opcode", "-4"):                  clients * 5,
		series("simplerpc_frames_sent_total", "opcode", "-5"):                  clients * 4,
		series("simplerpc_frames_sent_total", "opcode", "-3"):                  clients * 3,
		series("simplerpc_frames_sent_total", "opcode", "-2"):                  clients,
		series("simplerpc_frames_received_total", "opcode", "other"):           0,
		series("simplerpc_failures_sent_total", "reason", "ArgumentMissing"):   clients * 2,
		series("simplerpc_failures_sent_total", "reason", "InternalError"):     clients,
		series("simplerpc_failures_sent_total", "reason", "UnknownOpcode"):     clients,
		series("simplerpc_failures_received_total", "reason", "UnknownOpcode"): clients,
		series("simplerpc_failures_received_total", "reason", "other"):         0,
		series("simplerpc_calls_in_flight", "direction", "inbound"):            0,
		series("simplerpc_calls_in_flight", "direction", "outbound"):           0,
		series("simplerpc_connections_refused_total", "reason", "server_full"): 0,
		series("simplerpc_disconnects_total", "reason", "eof"):                 0,
		series("simplerpc_event_loops"):                                        1,
		series("simplerpc_stats_timeouts_total"):                               0,

		series("simplerpc_call_duration_seconds_count", "direction", "inbound", "opcode", "1", "outcome", "ok"):                clients * 5,
		series("simplerpc_call_duration_seconds_count", "direction", "inbound", "opcode", "other", "outcome", "failure"):       clients * 3, // 2's, and 9's UnknownOpcode
		series("simplerpc_call_duration_seconds_count", "direction", "inbound", "opcode", "other", "outcome", "panic"):         clients,
		series("simplerpc_call_duration_seconds_count", "direction", "outbound", "opcode", "other", "outcome", "ok"):           clients * 2,
		series("simplerpc_call_duration_seconds_count", "direction", "outbound", "opcode", "other", "outcome", "failure"):      clients,
		series("simplerpc_call_duration_seconds_bucket", "direction", "inbound", "opcode", "1", "outcome", "ok", "le", "+Inf"): clients * 5,
	}
	for k, v := range want {
		got, ok := after[k]
		if !ok {
			t.Errorf("%s missing", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	in := after[series("simplerpc_received_bytes_total")]
	var frames float64
	for k, v := range after {
		if strings.HasPrefix(k, "simplerpc_frames_received_total{") {
			frames += v
		}
	}
	if in != frames*size || in == 0 {
		t.Errorf("received bytes %v, want %v frames of %d", in, frames, size)
	}
	if d := after[series("simplerpc_call_duration_seconds_sum", "direction", "outbound", "opcode", "other", "outcome", "ok")]; d <= 0 {
		t.Errorf("outbound call durations sum to %v", d)
	}

	for _, cl := range cls {
		_ = cl.Close()
	}
	testkit.WaitFor(testContext(t), t, "3 disconnects", func() bool {
		_, m := s.scrape()
		return m[series("simplerpc_disconnects_total", "reason", "eof")] == clients &&
			m[series("simplerpc_connections_open")] == 0
	})
}

// TestScrapeTimeout blocks the only event loop: a scrape still answers,
// without the gauges the loop must report, and counts the timeout.
func TestScrapeTimeout(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	r := handler.NewRouter()
	r.On(7, func(handler.Conn, []byte) error {
		close(entered)
		<-release
		return nil
	})
	srv := startServer(t, r)
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, srv, metrics.WithScrapeTimeout(20*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	s := newScraper(t, reg)
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.Send(7, map[string]int{}); err != nil {
		t.Fatal(err)
	}
	<-entered
	body, m := s.scrape()
	close(release)
	promtool(t, body)
	if m[series("simplerpc_stats_timeouts_total")] != 1 {
		t.Errorf("timeouts = %v, want 1", m[series("simplerpc_stats_timeouts_total")])
	}
	if _, ok := m[series("simplerpc_outbound_queued_bytes")]; ok {
		t.Error("outbound bytes reported from a loop that did not answer")
	}
	if m[series("simplerpc_connections_open")] != 1 {
		t.Errorf("connections open = %v, want 1", m[series("simplerpc_connections_open")])
	}
	testkit.WaitFor(testContext(t), t, "a scrape with the loop back", func() bool {
		_, m := s.scrape()
		_, ok := m[series("simplerpc_outbound_queued_bytes")]
		return ok
	})
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	srv, err := engine.NewServer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []metrics.Option{
		metrics.WithOpcodes(256),
		metrics.WithOpcodes(-1),
		metrics.WithBuckets(),
		metrics.WithBuckets(1, 0.5),
		metrics.WithScrapeTimeout(0),
	} {
		if err := metrics.Register(prometheus.NewRegistry(), srv, o); !errors.Is(err, metrics.ErrInvalidOption) {
			t.Errorf("Register with a bad option: %v, want ErrInvalidOption", err)
		}
	}
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, srv); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Register(reg, srv); err == nil {
		t.Error("a second Register on one registry succeeded")
	}
	// Two servers on one registry, told apart by a label.
	srv2, _ := engine.NewServer(handler.NewRouter())
	if err := metrics.Register(reg, srv2, metrics.WithConstLabels(prometheus.Labels{"server": "b"})); err == nil {
		t.Error("a second server with other label names registered") // client_golang refuses inconsistent label names
	}
	reg2 := prometheus.NewRegistry()
	for i, s := range []*engine.Server{srv, srv2} {
		if err := metrics.Register(reg2, s, metrics.WithConstLabels(prometheus.Labels{"server": strconv.Itoa(i)})); err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
	}
	fams, err := reg2.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "simplerpc_connections_open" && len(f.GetMetric()) != 2 {
			t.Errorf("%d series of connections open, want 2", len(f.GetMetric()))
		}
	}
}

// TestNamesGathered checks that the metrics a live server exports are
// exactly the documented list (metricNames, used by the dashboard and
// docs tests), each with help text.
func TestNamesGathered(t *testing.T) {
	t.Parallel()
	r := handler.NewRouter()
	r.OnCall(1, func(handler.Conn, []byte) (any, error) { return nil, nil })
	srv := startServer(t, r)
	reg := prometheus.NewRegistry()
	if err := metrics.Register(reg, srv); err != nil {
		t.Fatal(err)
	}
	cl, err := engine.Dial(testContext(t), srv.Addr().String(), handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.Call(testContext(t), 1, nil, nil); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fams {
		got[f.GetName()] = true
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", f.GetName())
		}
	}
	for _, n := range metrics.MetricNames() {
		if !got[n] {
			t.Errorf("%s is not exported", n)
		}
		delete(got, n)
	}
	for n := range got {
		t.Errorf("%s is exported but not listed", n)
	}
}
