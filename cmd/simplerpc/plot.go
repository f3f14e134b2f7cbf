package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotFormats are the file extensions gonum/plot can write.
var plotFormats = []string{".png", ".svg", ".pdf", ".jpg", ".jpeg", ".tif", ".tiff", ".eps"}

// checkPlotFile rejects a --plot file that cannot be written, before the
// benchmark runs rather than after.
func checkPlotFile(file string) error {
	ext := strings.ToLower(filepath.Ext(file))
	ok := false
	for _, f := range plotFormats {
		ok = ok || ext == f
	}
	if !ok {
		return usagef("--plot %q: the extension must be one of %s", file, strings.Join(plotFormats, ", "))
	}
	if fi, err := os.Stat(filepath.Dir(file)); err != nil || !fi.IsDir() {
		return usagef("--plot %q: directory %q does not exist", file, filepath.Dir(file))
	}
	return nil
}

// plotSeries is one latency distribution to draw.
type plotSeries struct {
	name string
	h    *hdrhistogram.Histogram
}

// percentileTicks label the x axis, whose values are 1/(1-q).
var percentileTicks = []plot.Tick{
	{Value: 1, Label: "0%"},
	{Value: 2, Label: "50%"},
	{Value: 10, Label: "90%"},
	{Value: 100, Label: "99%"},
	{Value: 1e3, Label: "99.9%"},
	{Value: 1e4, Label: "99.99%"},
	{Value: 1e5, Label: "99.999%"},
	{Value: 1e6, Label: "99.9999%"},
}

// seriesColors are distinguishable on white and in grey.
var seriesColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// percentilePoints samples h at quantiles spread evenly on a log scale of
// 1/(1-q), ending at the maximum, which sits at 1/(1-q) = count.
func percentilePoints(h *hdrhistogram.Histogram) plotter.XYs {
	n := float64(h.TotalCount())
	var pts plotter.XYs
	for i := 0; ; i++ {
		x := math.Pow(10, float64(i)/40) // 1/(1-q)
		if x >= n {
			break
		}
		q := 1 - 1/x
		pts = append(pts, plotter.XY{X: x, Y: float64(h.ValueAtQuantile(q*100)) / 1e6})
	}
	return append(pts, plotter.XY{X: math.Max(n, 1), Y: float64(h.Max()) / 1e6})
}

// writePlot draws the latency distributions as percentile curves, latency
// in milliseconds against the percentile on a log scale that spreads out
// the tail, and saves them to file (the format follows the extension).
func writePlot(file, title string, series []plotSeries) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "percentile (log scale of 1/(1-q))"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks(percentileTicks)
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = vg.Points(-8)
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 0xcc}
	grid.Horizontal.Color = color.Gray{Y: 0xcc}
	p.Add(grid)
	maxX := 10.0
	for i, s := range series {
		if s.h.TotalCount() == 0 {
			continue
		}
		pts := percentilePoints(s.h)
		maxX = math.Max(maxX, pts[len(pts)-1].X)
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		line.Color = seriesColors[i%len(seriesColors)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(s.name, line)
	}
	p.X.Min, p.X.Max = 1, maxX
	// Keep the ticks that fall inside the data, plus the one after.
	var ticks []plot.Tick
	for _, t := range percentileTicks {
		if t.Value <= maxX*10 {
			ticks = append(ticks, t)
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Max = math.Pow(10, math.Ceil(math.Log10(maxX)))
	p.Y.Tick.Marker = niceTicks{n: 8}
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.Title.TextStyle.XAlign = draw.XCenter
	if err := p.Save(9*vg.Inch, 5*vg.Inch, file); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// niceTicks places about n major ticks at multiples of 1, 2 or 5 times a
// power of ten, with labels that drop useless zeros.
type niceTicks struct{ n int }

// Ticks returns the ticks for the range [lo, hi].
func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / float64(t.n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step/1e6; v += step {
		v = math.Round(v/step) * step
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		ticks = append(ticks, plot.Tick{Value: v + step/2}) // minor
	}
	return ticks
}
