package report

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotFile is one of the plots a run writes.
type PlotFile struct {
	File  string
	Title string
}

// PlotFiles are the plots WritePlots writes, in the order the markdown
// shows them.
var PlotFiles = []PlotFile{
	{"perf-echo-throughput.png", "Echo throughput relative to raw gnet"},
	{"perf-echo-latency.png", "Echo latency percentiles"},
	{"perf-broadcast.png", "Send-to-all: time until every connection has the frame"},
	{"perf-idle-rss.png", "Server RSS per idle connection"},
	{"perf-calls.png", "Calls with replies"},
}

// echoImpls and callImpls fix the order of the bars.
var (
	echoImpls = []string{"simplerpc", "rawgnet", "netcareful", "netnaive"}
	callImpls = []string{"simplerpc", "netrpc"}
)

// series is one bar series: a value per group; NaN leaves a gap.
type series struct {
	name   string
	values []float64
}

// WritePlots writes the plots of PlotFiles into dir. A plot without data
// (a scenario the run skipped) is not written.
func WritePlots(res *Results, dir string) ([]string, error) {
	var written []string
	write := func(file string, p *plot.Plot, w vg.Length) error {
		if p == nil {
			return nil
		}
		path := filepath.Join(dir, file)
		if err := p.Save(w, 4.5*vg.Inch, path); err != nil {
			return fmt.Errorf("report: %s: %w", file, err)
		}
		written = append(written, path)
		return nil
	}
	if err := write(PlotFiles[0].File, echoThroughput(res), 9*vg.Inch); err != nil {
		return written, err
	}
	if err := write(PlotFiles[1].File, echoLatency(res), 9*vg.Inch); err != nil {
		return written, err
	}
	if err := write(PlotFiles[2].File, broadcastPlot(res), 6*vg.Inch); err != nil {
		return written, err
	}
	if err := write(PlotFiles[3].File, idlePlot(res), 7*vg.Inch); err != nil {
		return written, err
	}
	if err := write(PlotFiles[4].File, callsPlot(res), 7*vg.Inch); err != nil {
		return written, err
	}
	return written, nil
}

// configs returns the distinct (conns, pipeline) of a scenario, in order.
func configs(rows []Row, scenario string) [][2]int {
	var out [][2]int
	seen := map[[2]int]bool{}
	for _, r := range rows {
		k := [2]int{r.Conns, r.Pipeline}
		if r.Scenario == scenario && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

func echoThroughput(res *Results) *plot.Plot {
	cfgs := configs(res.Rows, "echo")
	if len(cfgs) == 0 {
		return nil
	}
	groups := make([]string, len(cfgs))
	for i, c := range cfgs {
		groups[i] = fmt.Sprintf("%d conns x %d", c[0], c[1])
	}
	var ss []series
	for _, impl := range echoImpls {
		s := series{name: Name(impl)}
		for _, c := range cfgs {
			r, ok1 := Find(res.Rows, "echo", impl, c[0], c[1])
			raw, ok2 := Find(res.Rows, "echo", "rawgnet", c[0], c[1])
			v := math.NaN()
			if ok1 && ok2 && r.Throughput.OK() && raw.Throughput.OK() {
				v = r.Throughput.Median / raw.Throughput.Median
			}
			s.values = append(s.values, v)
		}
		ss = append(ss, s)
	}
	p := bars("Echo throughput relative to raw gnet (256-byte frames; x = conns x frames in flight)",
		"throughput / raw gnet's", groups, ss)
	// The target lines: 0.5 and 0.9.
	for _, y := range []float64{0.5, 0.9} {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: y}, {X: float64(len(groups)) - 0.5, Y: y}})
		if err == nil {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			l.Color = plotutil.Color(6)
			p.Add(l)
		}
	}
	return p
}

func echoLatency(res *Results) *plot.Plot {
	cfgs := configs(res.Rows, "echo")
	if len(cfgs) == 0 {
		return nil
	}
	// Three percentiles per configuration, as groups.
	var groups []string
	type pick func(Row) Stat
	var picks []pick
	for _, c := range cfgs {
		if c[0] == 1 {
			continue // one connection: latency is one round trip, shown in the table
		}
		for _, q := range []struct {
			name string
			f    pick
		}{{"p50", func(r Row) Stat { return r.P50 }}, {"p99", func(r Row) Stat { return r.P99 }},
			{"p99.9", func(r Row) Stat { return r.P999 }}} {
			groups = append(groups, fmt.Sprintf("%s\n%dx%d", q.name, c[0], c[1]))
			cc := c
			f := q.f
			picks = append(picks, func(r Row) Stat {
				rr, ok := Find(res.Rows, "echo", r.Impl, cc[0], cc[1])
				if !ok {
					return Stat{}
				}
				return f(rr)
			})
		}
	}
	if len(groups) == 0 {
		return nil
	}
	// Lines on a log scale (bars cannot start at zero there): one line per
	// server and configuration, through its three percentiles.
	p := plot.New()
	p.Title.Text = "Echo round-trip latency, log scale (x: percentile, conns x frames in flight)"
	p.Y.Label.Text = "ms"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for k, impl := range echoImpls {
		var legend bool
		for start := 0; start < len(picks); start += 3 {
			var xys plotter.XYs
			for j := start; j < start+3 && j < len(picks); j++ {
				if v := picks[j](Row{Key: Key{Impl: impl}}); v.OK() && v.Median > 0 {
					xys = append(xys, plotter.XY{X: float64(j), Y: v.Median / 1e3})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				continue
			}
			l.Color = plotutil.Color(k)
			pts.Color = plotutil.Color(k)
			pts.Shape = plotutil.Shape(k)
			p.Add(l, pts)
			if !legend {
				p.Legend.Add(Name(impl), l, pts)
				legend = true
			}
		}
	}
	p.NominalX(groups...)
	p.Add(plotter.NewGrid())
	return p
}

func broadcastPlot(res *Results) *plot.Plot {
	cfgs := configs(res.Rows, "broadcast")
	if len(cfgs) == 0 {
		return nil
	}
	groups := make([]string, len(cfgs))
	for i, c := range cfgs {
		groups[i] = fmt.Sprintf("%d conns", c[0])
	}
	var ss []series
	for _, impl := range echoImpls {
		s := series{name: Name(impl)}
		for _, c := range cfgs {
			r, ok := Find(res.Rows, "broadcast", impl, c[0], 0)
			if ok && r.RoundUS.OK() {
				s.values = append(s.values, r.RoundUS.Median/1e3)
			} else {
				s.values = append(s.values, math.NaN())
			}
		}
		ss = append(ss, s)
	}
	return bars("Send-to-all: time until every connection has the frame", "ms", groups, ss)
}

func idlePlot(res *Results) *plot.Plot {
	cfgs := configs(res.Rows, "idle")
	if len(cfgs) == 0 {
		return nil
	}
	groups := make([]string, len(cfgs))
	for i, c := range cfgs {
		groups[i] = fmt.Sprintf("%d conns", c[0])
	}
	var ss []series
	for _, impl := range echoImpls {
		s := series{name: Name(impl)}
		for _, c := range cfgs {
			r, ok := Find(res.Rows, "idle", impl, c[0], 0)
			if ok && r.RSSPerConn.OK() {
				s.values = append(s.values, r.RSSPerConn.Median)
			} else {
				s.values = append(s.values, math.NaN())
			}
		}
		ss = append(ss, s)
	}
	p := bars("Server RSS per idle connection (bytes)", "bytes", groups, ss)
	l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: 1024}, {X: float64(len(groups)) - 0.5, Y: 1024}})
	if err == nil {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = plotutil.Color(6)
		p.Add(l)
	}
	return p
}

func callsPlot(res *Results) *plot.Plot {
	cfgs := configs(res.Rows, "call")
	if len(cfgs) == 0 {
		return nil
	}
	groups := make([]string, len(cfgs))
	for i, c := range cfgs {
		groups[i] = fmt.Sprintf("%d conns x %d in flight", c[0], c[1])
	}
	var ss []series
	for _, impl := range callImpls {
		s := series{name: Name(impl)}
		for _, c := range cfgs {
			r, ok := Find(res.Rows, "call", impl, c[0], c[1])
			if ok && r.Throughput.OK() {
				s.values = append(s.values, r.Throughput.Median/1e3)
			} else {
				s.values = append(s.values, math.NaN())
			}
		}
		ss = append(ss, s)
	}
	return bars("Calls with replies: thousands of calls per second", "k calls/s", groups, ss)
}

// bars draws grouped bars: one group per label, one bar per series, with
// each bar's value written above it.
func bars(title, ylabel string, groups []string, ss []series) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	n := 0
	for _, s := range ss {
		if hasValue(s.values) {
			n++
		}
	}
	w := vg.Points(min(18, 300/float64(max(1, n*len(groups)))))
	i := 0
	for k, s := range ss {
		if !hasValue(s.values) {
			continue
		}
		vals := make(plotter.Values, len(s.values))
		for j, v := range s.values {
			if math.IsNaN(v) {
				v = 0
			}
			vals[j] = v
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			continue
		}
		b.Color = plotutil.Color(k)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(b)
		p.Legend.Add(s.name, b)
		// Value labels.
		var xys plotter.XYs
		var labels []string
		for j, v := range s.values {
			if math.IsNaN(v) || v == 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: float64(j), Y: v})
			labels = append(labels, short(v))
		}
		if len(xys) > 0 {
			ls, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err == nil {
				for t := range ls.TextStyle {
					ls.TextStyle[t].Font.Size = vg.Points(6)
					ls.TextStyle[t].XAlign = draw.XCenter
					ls.TextStyle[t].YAlign = draw.YBottom
				}
				ls.Offset = vg.Point{X: b.Offset}
				p.Add(ls)
			}
		}
		i++
	}
	p.NominalX(groups...)
	p.Add(plotter.NewGrid())
	// Headroom for the legend above the bars.
	top := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			if !math.IsNaN(v) {
				top = math.Max(top, v)
			}
		}
	}
	p.Y.Min, p.Y.Max = 0, top*1.45
	return p
}

func hasValue(vs []float64) bool {
	for _, v := range vs {
		if !math.IsNaN(v) && v != 0 {
			return true
		}
	}
	return false
}

// short formats a bar's value in three significant digits.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
