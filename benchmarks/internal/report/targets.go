package report

import "fmt"

// Names of the servers, as the tables print them.
var Names = map[string]string{
	"simplerpc":  "simplerpc",
	"rawgnet":    "raw gnet (ceiling)",
	"netcareful": "net, careful (bufio)",
	"netnaive":   "net, naive",
	"netrpc":     "net/rpc + jsonrpc",

	"simplerpc-tls": "simplerpc, TLS",
	"nettls":        "net + crypto/tls (careful)",
	"simplerpc-ws":  "simplerpc, WebSocket",
	"netws":         "net/http + gorilla/websocket",
}

// Name returns the display name of impl.
func Name(impl string) string {
	if n, ok := Names[impl]; ok {
		return n
	}
	return impl
}

// Targets checks the goals against the aggregated rows. A goal the
// run did not cover (a --quick run has no 1000-connection echo) is listed
// as not measured.
func Targets(rows []Row) []Target {
	var ts []Target
	ratio := func(name, want string, a, b Stat, limit float64, atMost bool, detail string) {
		t := Target{Name: name, Want: want}
		if a.OK() && b.OK() && b.Median > 0 {
			t.Known = true
			t.Ratio = a.Median / b.Median
			if atMost {
				t.Met = t.Ratio <= limit
			} else {
				t.Met = t.Ratio >= limit
			}
			t.Detail = fmt.Sprintf(detail, a.Median, b.Median)
			if rs := perRep(a, b); len(rs) > 1 {
				st := stat(rs)
				t.PerRepMedian, t.PerRepMin, t.PerRepMax = st.Median, st.Min, st.Max
			}
		}
		ts = append(ts, t)
	}
	echo := func(impl string, conns, pipe int) Row {
		r, _ := Find(rows, "echo", impl, conns, pipe)
		return r
	}
	// The hot-path issue's targets (issue 31): against raw gnet, the
	// ceiling for anything built on gnet.
	ratio("echo, 100 conns, 16 in flight: throughput vs raw gnet", ">= 0.75x",
		echo("simplerpc", 100, 16).Throughput, echo("rawgnet", 100, 16).Throughput, 0.75, false,
		"%.0f vs %.0f frames/s")
	ratio("echo, 100 conns, 16 in flight: server CPU per frame vs raw gnet", "<= 1.4x",
		echo("simplerpc", 100, 16).CPUPerItem, echo("rawgnet", 100, 16).CPUPerItem, 1.4, true,
		"%.2f vs %.2f µs")
	ratio("echo, 100 conns, 1 in flight: throughput vs raw gnet", ">= 1.0x",
		echo("simplerpc", 100, 1).Throughput, echo("rawgnet", 100, 1).Throughput, 1.0, false,
		"%.0f vs %.0f frames/s")
	ratio("echo, 1000 conns, 1 in flight: throughput vs raw gnet", ">= 1.0x",
		echo("simplerpc", 1000, 1).Throughput, echo("rawgnet", 1000, 1).Throughput, 1.0, false,
		"%.0f vs %.0f frames/s")
	ratio("echo, 100 conns, 16 in flight: throughput vs careful net", ">= 1.0x",
		echo("simplerpc", 100, 16).Throughput, echo("netcareful", 100, 16).Throughput, 1.0, false,
		"%.0f vs %.0f frames/s")
	ratio("echo, 100 conns, 1 in flight: throughput vs careful net", ">= 1.0x",
		echo("simplerpc", 100, 1).Throughput, echo("netcareful", 100, 1).Throughput, 1.0, false,
		"%.0f vs %.0f frames/s")
	ratio("echo, 1000 conns, 16 in flight: p99 vs careful net", "<= 0.5x",
		echo("simplerpc", 1000, 16).P99, echo("netcareful", 1000, 16).P99, 0.5, true,
		"%.0f vs %.0f µs")

	// Idle memory: the largest point both servers reached.
	idle := func(impl string) (Row, bool) {
		var best Row
		found := false
		for _, r := range rows {
			if r.Scenario == "idle" && r.Impl == impl && r.RSSPerConn.OK() && r.Conns > best.Conns {
				best, found = r, true
			}
		}
		return best, found
	}
	s, okS := idle("simplerpc")
	c, okC := idle("netcareful")
	if okS && okC && c.Conns != s.Conns {
		c, okC = Find(rows, "idle", "netcareful", s.Conns, 0)
	}
	if okS && okC {
		ratio(fmt.Sprintf("idle, %d conns: RSS per connection vs careful net", s.Conns), "<= 0.33x",
			s.RSSPerConn, c.RSSPerConn, 1.0/3, true, "%.0f vs %.0f bytes")
	} else {
		ts = append(ts, Target{Name: "idle: RSS per connection vs careful net", Want: "<= 0.33x"})
	}
	// Absolute idle targets at the counts the issue names: at most 900
	// bytes at 10,000 connections, under 775 at 19,000.
	for _, it := range []struct {
		conns int
		want  string
		limit float64
		under bool
	}{{10000, "<= 900 bytes", 900, false}, {19000, "< 775 bytes", 775, true}} {
		name := fmt.Sprintf("idle, %d conns: RSS per connection", it.conns)
		r, ok := Find(rows, "idle", "simplerpc", it.conns, 0)
		if !ok || !r.RSSPerConn.OK() {
			ts = append(ts, Target{Name: name, Want: it.want})
			continue
		}
		v := r.RSSPerConn.Median
		t := Target{Name: name, Want: it.want, Known: true, Ratio: v / it.limit,
			Met: v <= it.limit && !(it.under && v == it.limit)}
		t.Detail = fmt.Sprintf("%.0f bytes", v)
		if g, ok := Find(rows, "idle", "rawgnet", it.conns, 0); ok && g.RSSPerConn.OK() {
			t.Detail += fmt.Sprintf(" (raw gnet %.0f)", g.RSSPerConn.Median)
		}
		ts = append(ts, t)
	}

	// Send-to-all: the largest connection count measured.
	bc := 0
	for _, r := range rows {
		if r.Scenario == "broadcast" && r.Impl == "simplerpc" && r.Conns > bc {
			bc = r.Conns
		}
	}
	bs, _ := Find(rows, "broadcast", "simplerpc", bc, 0)
	br, _ := Find(rows, "broadcast", "rawgnet", bc, 0)
	ratio(fmt.Sprintf("send-to-all, %d conns: time until all have it vs raw gnet", bc), "<= 1.2x",
		bs.RoundUS, br.RoundUS, 1.2, true, "%.0f vs %.0f µs")

	for _, r := range rows {
		if r.Scenario != "call" || r.Impl != "simplerpc" {
			continue
		}
		n, _ := Find(rows, "call", "netrpc", r.Conns, r.Pipeline)
		// 2x at one connection; at 100 connections the hot-path issue's
		// 1.6x (1 in flight) and 3x (16 in flight).
		limit := 2.0
		if r.Conns >= 100 {
			limit = 1.6
			if r.Pipeline > 1 {
				limit = 3
			}
		}
		ratio(fmt.Sprintf("calls, %d conns x %d in flight: throughput vs net/rpc+jsonrpc", r.Conns, r.Pipeline),
			fmt.Sprintf(">= %gx", limit), r.Throughput, n.Throughput, limit, false, "%.0f vs %.0f calls/s")
	}
	// TLS and WebSocket against the goroutine-per-connection servers.
	for _, t := range []struct{ scen, us, them, want string }{
		{"tls-echo", "simplerpc-tls", "nettls", ">= 1.0x"},
		{"ws-echo", "simplerpc-ws", "netws", ">= 1.2x"},
	} {
		for _, r := range rows {
			if r.Scenario != t.scen || r.Impl != t.us {
				continue
			}
			n, _ := Find(rows, t.scen, t.them, r.Conns, r.Pipeline)
			limit := map[string]float64{">= 1.0x": 1.0, ">= 1.2x": 1.2}[t.want]
			ratio(fmt.Sprintf("%s, %d conns x %d in flight: throughput vs %s", t.scen, r.Conns, r.Pipeline, Name(t.them)),
				t.want, r.Throughput, n.Throughput, limit, false, "%.0f vs %.0f frames/s")
			ratio(fmt.Sprintf("%s, %d conns x %d in flight: p99 vs %s", t.scen, r.Conns, r.Pipeline, Name(t.them)),
				"< 1.0x", r.P99, n.P99, 0.999, true, "%.0f vs %.0f µs")
		}
	}
	for _, r := range rows {
		if r.Scenario == "tls-handshake" && r.Impl == "simplerpc-tls" {
			n, _ := Find(rows, "tls-handshake", "nettls", r.Conns, 0)
			ratio(fmt.Sprintf("full TLS handshakes, %d in flight: per second vs %s", r.Conns, Name("nettls")), ">= 0.9x",
				r.Throughput, n.Throughput, 0.9, false, "%.0f vs %.0f handshakes/s")
		}
	}
	for _, t := range []struct {
		scen, us, them, want string
		limit                float64
	}{
		{"tls-idle", "simplerpc-tls", "nettls", "<= 0.5x", 0.5},
		{"ws-idle", "simplerpc-ws", "netws", "<= 0.3x", 0.3},
	} {
		for _, r := range rows {
			if r.Scenario == t.scen && r.Impl == t.us {
				n, _ := Find(rows, t.scen, t.them, r.Conns, 0)
				ratio(fmt.Sprintf("%s, %d conns: RSS per connection vs %s", t.scen, r.Conns, Name(t.them)), t.want,
					r.RSSPerConn, n.RSSPerConn, t.limit, true, "%.0f vs %.0f bytes")
				ratio(fmt.Sprintf("%s, %d conns: RSS per connection after GC vs %s", t.scen, r.Conns, Name(t.them)), t.want,
					r.RSSPerConnGC, n.RSSPerConnGC, t.limit, true, "%.0f vs %.0f bytes")
			}
		}
	}
	return ts
}
