// Package report holds the results the load generators print and the
// runner collects, their aggregation over repetitions, the markdown table
// and the plots.
package report

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency summarises a latency distribution, in microseconds.
type Latency struct {
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
	Mean float64 `json:"mean_us"`
}

// Summarize reads the percentiles of h, which holds nanoseconds.
func Summarize(h *hdrhistogram.Histogram) Latency {
	us := func(v int64) float64 { return float64(v) / 1e3 }
	return Latency{
		P50: us(h.ValueAtQuantile(50)), P90: us(h.ValueAtQuantile(90)), P99: us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)), Max: us(h.Max()), Mean: h.Mean() / 1e3,
	}
}

// Histogram bounds: 1 µs to 60 s, 3 significant figures.
const (
	HistMin = int64(time.Microsecond)
	HistMax = int64(60 * time.Second)
)

// NewHist returns a histogram of nanoseconds.
func NewHist() *hdrhistogram.Histogram { return hdrhistogram.New(HistMin, HistMax, 3) }

// Record records d in h, clamped to its bounds.
func Record(h *hdrhistogram.Histogram, d int64) {
	_ = h.RecordValue(min(max(d, HistMin), HistMax))
}

// LoadResult is what one load generator run prints: one JSON object.
type LoadResult struct {
	Mode     string `json:"mode"` // echo, broadcast, call
	Impl     string `json:"impl"`
	Conns    int    `json:"conns"`
	Pipeline int    `json:"pipeline,omitempty"` // frames (echo) or calls in flight per connection
	Size     int    `json:"size,omitempty"`

	ElapsedS   float64 `json:"elapsed_s"`
	Frames     int64   `json:"frames"` // echoes, deliveries or calls measured
	FramesPerS float64 `json:"frames_per_s"`
	Errors     int64   `json:"errors"`
	Latency    Latency `json:"latency"`

	// Broadcast: the time until every connection had the frame, per round.
	Rounds     int       `json:"rounds,omitempty"`
	Incomplete int       `json:"incomplete_rounds,omitempty"`
	RoundUS    []float64 `json:"round_us,omitempty"`
	RoundP50   float64   `json:"round_p50_us,omitempty"`

	// CPU during the measured window, read from /proc: the server's
	// utime+stime, and each side's share of one core.
	ServerCPUS         float64 `json:"server_cpu_s"`
	ServerCPUUtil      float64 `json:"server_cpu_util"`
	ServerCPUUSPerItem float64 `json:"server_cpu_us_per_frame"`
	ClientCPUUtil      float64 `json:"client_cpu_util"`
	// The server's read-like and write-like system calls (/proc/PID/io)
	// per frame, call or round.
	ServerReadsPerItem  float64 `json:"server_reads_per_frame"`
	ServerWritesPerItem float64 `json:"server_writes_per_frame"`
}

// ParseLoad parses a load generator's output: the last line that holds a
// JSON object.
func ParseLoad(out []byte) (*LoadResult, error) {
	lines := splitLines(out)
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if len(l) == 0 || l[0] != '{' {
			continue
		}
		var r LoadResult
		if err := json.Unmarshal(l, &r); err != nil {
			return nil, fmt.Errorf("report: load generator output: %w", err)
		}
		return &r, nil
	}
	return nil, fmt.Errorf("report: no JSON result in load generator output %.200q", out)
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	if start < len(b) {
		out = append(out, b[start:])
	}
	return out
}
