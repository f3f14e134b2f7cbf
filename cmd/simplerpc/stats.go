package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in nanoseconds, from 1 ns to a minute, with three
// significant digits.
const (
	histMin    = 1
	histMax    = int64(time.Minute)
	histDigits = 3
)

// newHist returns an empty latency histogram.
func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histDigits)
}

// histShard is one histogram and its lock, padded so that shards written
// by different event loops do not share a cache line.
type histShard struct {
	mu sync.Mutex // guards h
	h  *hdrhistogram.Histogram
	_  [48]byte
}

// shardedHist records latencies from several event loops with little
// contention: a connection always records into the shard its id picks.
// It is safe for concurrent use by multiple goroutines.
type shardedHist struct {
	shards []histShard
	closed atomic.Bool
}

// newShardedHist returns a histogram of n shards.
func newShardedHist(n int) *shardedHist {
	s := &shardedHist{shards: make([]histShard, n)}
	for i := range s.shards {
		s.shards[i].h = newHist()
	}
	return s
}

// record adds one latency for the connection with id; values out of range
// are clamped to it. It reports false, recording nothing, once the
// histogram is closed.
func (s *shardedHist) record(id uint64, d time.Duration) bool {
	v := min(max(int64(d), histMin), histMax)
	sh := &s.shards[id%uint64(len(s.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	_ = sh.h.RecordValue(v)
	return true
}

// close ends the measurement: once it returns, nothing more is recorded,
// not even by a callback that was already under way, so that the count
// read next is final.
func (s *shardedHist) close() {
	s.closed.Store(true)
	for i := range s.shards { // a record that saw the histogram open has finished
		s.shards[i].mu.Lock()
		//lint:ignore SA2001 a barrier: a record under way has finished
		s.shards[i].mu.Unlock()
	}
}

// merged returns one histogram of everything recorded.
func (s *shardedHist) merged() *hdrhistogram.Histogram {
	out := newHist()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		out.Merge(sh.h)
		sh.mu.Unlock()
	}
	return out
}

// latencyStats summarises a histogram in microseconds.
type latencyStats struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// summarize returns the statistics of h.
func summarize(h *hdrhistogram.Histogram) latencyStats {
	if h.TotalCount() == 0 {
		return latencyStats{}
	}
	us := func(ns int64) float64 { return math.Round(float64(ns)/10) / 100 } // µs, 2 decimals
	return latencyStats{
		Count: h.TotalCount(),
		Min:   us(h.Min()),
		Mean:  math.Round(h.Mean()/10) / 100,
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}

// benchConfig is what bench was asked to do.
type benchConfig struct {
	Addr      string  `json:"addr"`
	Conns     int     `json:"conns"`
	DurationS float64 `json:"duration_s"`
	Pipeline  int     `json:"pipeline,omitempty"`
	Rounds    int     `json:"rounds,omitempty"`
	Rate      float64 `json:"rate,omitempty"` // --rate: the open loop's frames per second
	Size      int     `json:"size"`
	Loops     int     `json:"loops"`
	Sources   int     `json:"sources"`
}

// benchReport is bench's result, printed as a table or, with --json, as
// one JSON object.
type benchReport struct {
	Mode         string      `json:"mode"` // "echo", "frames", "calls" or "broadcast"
	Config       benchConfig `json:"config"`
	Conns        int         `json:"conns"`   // connections that took part
	Sources      int         `json:"sources"` // source addresses used
	MessageSize  int         `json:"message_size"`
	PayloadBytes int         `json:"payload_bytes"` // opcode and JSON object per frame
	ElapsedS     float64     `json:"elapsed_s"`
	// Sent counts the frames or calls the open loop sent (--rate).
	Sent int64 `json:"sent,omitempty"`
	// Frames counts echoes, answers or replies received (echo, frames,
	// calls) or deliveries (broadcast).
	Frames     int64   `json:"frames"`
	FramesPerS float64 `json:"frames_per_s"`
	// BytesPerS counts whole frames, padding included, in one direction.
	BytesPerS float64 `json:"bytes_per_s"`
	// Latency is per echo, answer or reply, from the intended send time
	// in the open loop, or per delivery (broadcast), in µs.
	Latency latencyStats `json:"latency_us"`
	// RoundLatency is, per broadcast round, the time until every
	// connection had the frame, in µs.
	RoundLatency     *latencyStats `json:"round_us,omitempty"`
	Rounds           int           `json:"rounds,omitempty"`
	IncompleteRounds int           `json:"incomplete_rounds,omitempty"`
	// MissedDeliveries counts, over the incomplete rounds, the connections
	// that never got the round's frame.
	MissedDeliveries int64 `json:"missed_deliveries,omitempty"`
	Errors           int64 `json:"errors"`
	Disconnects      int64 `json:"disconnects"`
	Interrupted      bool  `json:"interrupted,omitempty"`
	// Server is the change over the run of the server's key metrics,
	// scraped from --metrics-url, summed over their labels.
	Server map[string]float64 `json:"server_metrics,omitempty"`

	// The incomplete round that missed the most connections: how many, of
	// how many.
	worstMissed, worstOf int64
}

// writeTable prints r for people.
func (r *benchReport) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	fmt.Fprintf(tw, "target\t%s, message size %d B, payload %d B\n", r.Config.Addr, r.MessageSize, r.PayloadBytes)
	conns := fmt.Sprintf("%d (%s, %s)", r.Conns, plural(r.Sources, "source address", "source addresses"),
		plural(r.Config.Loops, "event loop", "event loops"))
	if r.Conns != r.Config.Conns {
		conns += fmt.Sprintf(", %d asked for", r.Config.Conns)
	}
	fmt.Fprintf(tw, "connections\t%s\n", conns)
	elapsed := fmt.Sprintf("%.2f s", r.ElapsedS)
	if r.Interrupted {
		elapsed += " (interrupted)"
	}
	rate := fmt.Sprintf("%s frames/s, %s/s", siFormat(r.FramesPerS), byteFormat(r.BytesPerS))
	switch r.Mode {
	case "echo", "frames", "calls":
		what := map[string]string{"echo": "echoes", "frames": "answers", "calls": "replies"}[r.Mode]
		loop := fmt.Sprintf("closed loop, pipeline %d per connection", r.Config.Pipeline)
		if r.Config.Rate > 0 {
			loop = fmt.Sprintf("open loop at %s/s in all, latency from the intended send times", siFormat(r.Config.Rate))
		}
		fmt.Fprintf(tw, "mode\t%s, %s\n", r.Mode, loop)
		fmt.Fprintf(tw, "elapsed\t%s\n", elapsed)
		if r.Config.Rate > 0 {
			fmt.Fprintf(tw, "sent\t%d\n", r.Sent)
		}
		fmt.Fprintf(tw, "%s\t%d (%s)\n", what, r.Frames, rate)
	case "broadcast":
		fmt.Fprintf(tw, "mode\tbroadcast, one send-to-all per round\n")
		fmt.Fprintf(tw, "elapsed\t%s\n", elapsed)
		rounds := fmt.Sprintf("%d", r.Rounds)
		if r.IncompleteRounds > 0 {
			rounds += fmt.Sprintf(" (%d incomplete, %d deliveries missing)", r.IncompleteRounds, r.MissedDeliveries)
		}
		fmt.Fprintf(tw, "rounds\t%s\n", rounds)
		fmt.Fprintf(tw, "deliveries\t%d (%s)\n", r.Frames, rate)
	}
	fmt.Fprintf(tw, "errors\t%d (%d disconnects)\n", r.Errors, r.Disconnects)
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "latency\tp50\tp90\tp99\tp99.9\tmax")
	row := func(name string, s latencyStats) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name,
			usFormat(s.P50), usFormat(s.P90), usFormat(s.P99), usFormat(s.P999), usFormat(s.Max))
	}
	switch r.Mode {
	case "echo", "frames", "calls":
		row("round trip", r.Latency)
	case "broadcast":
		if r.RoundLatency != nil {
			row("all reached", *r.RoundLatency)
		}
		row("each delivery", r.Latency)
	}
	return tw.Flush()
}

// usFormat prints a latency given in µs with three significant digits.
func usFormat(us float64) string {
	d := time.Duration(us * 1e3)
	switch {
	case d == 0:
		return "-"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(us) + "µs"
	case d < time.Second:
		return sig3(us/1e3) + "ms"
	}
	return sig3(us/1e6) + "s"
}

// sig3 formats v (1 <= v < 1000) with three significant digits.
func sig3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// siFormat prints a rate with a k or M suffix.
func siFormat(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(fmt.Sprintf("%.2f", v/1e6), ".00") + "M"
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// byteFormat prints a byte rate in MB (10^6) or kB.
func byteFormat(v float64) string {
	if v >= 1e6 {
		return fmt.Sprintf("%.1f MB", v/1e6)
	}
	return fmt.Sprintf("%.1f kB", v/1e3)
}
