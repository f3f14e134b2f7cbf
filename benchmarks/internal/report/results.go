package report

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs       int     `json:"nproc"`
	CPUModel   string  `json:"cpu_model"`
	GoVersion  string  `json:"go_version"`
	Kernel     string  `json:"kernel"`
	NoFile     uint64  `json:"rlimit_nofile"`
	MemTotalMB int     `json:"mem_total_mb"`
	LoadStart  float64 `json:"loadavg1_at_start"`
	LoadEnd    float64 `json:"loadavg1_at_end"`
	Quiet      bool    `json:"quiet_at_start"` // the 1-minute load was below the threshold
	Pinned     bool    `json:"pinned"`         // server on core 0, load generators on core 1
}

// IdleResult is one idle-connections measurement: the server's resident
// memory with conns idle connections open, against its memory with none.
type IdleResult struct {
	Conns       int     `json:"conns"`
	Holders     int     `json:"holder_processes"`
	BaseRSS     int64   `json:"base_rss_bytes"`
	RSS         int64   `json:"rss_bytes"`
	FDs         int     `json:"server_fds"`
	PerConn     float64 `json:"rss_bytes_per_conn"`
	ConnectS    float64 `json:"connect_s"`
	ServerCPUUS float64 `json:"server_cpu_us_per_conn"` // accepting, per connection
	// SlabPerConn is the growth of the kernel's slab memory per connection,
	// for both ends (the holders run on the same machine).
	SlabPerConn float64 `json:"kernel_slab_bytes_per_conn_both_ends"`
	// RSSAfterGC and PerConnAfterGC: the same once the server has collected
	// its garbage and returned free memory to the system (TLS and WebSocket
	// scenarios only): what the connections hold, without the garbage of
	// their handshakes.
	RSSAfterGC     int64   `json:"rss_bytes_after_gc,omitempty"`
	PerConnAfterGC float64 `json:"rss_bytes_per_conn_after_gc,omitempty"`
}

// Run is one repetition of one scenario against one server.
type Run struct {
	Scenario string      `json:"scenario"` // echo, broadcast, idle, call
	Rep      int         `json:"rep"`
	Impl     string      `json:"impl"`
	Conns    int         `json:"conns"`
	Pipeline int         `json:"pipeline,omitempty"`
	Load     *LoadResult `json:"load,omitempty"`
	Idle     *IdleResult `json:"idle,omitempty"`
	Err      string      `json:"error,omitempty"`
}

// Key identifies a scenario configuration and server.
type Key struct {
	Scenario string `json:"scenario"`
	Impl     string `json:"impl"`
	Conns    int    `json:"conns"`
	Pipeline int    `json:"pipeline,omitempty"`
}

func (r Run) key() Key { return Key{r.Scenario, r.Impl, r.Conns, r.Pipeline} }

// Stat is the median of the repetitions, with their range.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`

	byRep map[int]float64 // each repetition's figure, for side-by-side ratios (perRep)
}

// OK reports whether the statistic has any value.
func (s Stat) OK() bool { return s.N > 0 }

func stat(vs []float64) Stat {
	if len(vs) == 0 {
		return Stat{}
	}
	s := slices.Clone(vs)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// repStat is stat that also keeps which repetition each figure came from:
// reps[i] is vs[i]'s.
func repStat(vs []float64, reps []int) Stat {
	st := stat(vs)
	if len(vs) == len(reps) && len(vs) > 0 {
		st.byRep = make(map[int]float64, len(vs))
		for i, v := range vs {
			st.byRep[reps[i]] = v
		}
	}
	return st
}

// perRep returns a / b for each repetition both measured: each a
// side-by-side figure, where the ratio of the medians compares figures of
// different moments.
func perRep(a, b Stat) []float64 {
	var out []float64
	for r, v := range a.byRep {
		if w := b.byRep[r]; w > 0 {
			out = append(out, v/w)
		}
	}
	return out
}

// Row is the aggregate of one configuration over its repetitions: the
// median of each figure.
type Row struct {
	Key
	Throughput   Stat `json:"frames_per_s"`       // echoes, calls, or broadcast deliveries per second
	P50          Stat `json:"p50_us"`             //
	P99          Stat `json:"p99_us"`             //
	P999         Stat `json:"p999_us"`            //
	CPUPerItem   Stat `json:"server_cpu_us_per"`  // per frame, call, broadcast round or accepted connection
	ServerUtil   Stat `json:"server_cpu_util"`    //
	ClientUtil   Stat `json:"client_cpu_util"`    //
	Reads        Stat `json:"server_reads_per"`   // read-like system calls per frame, call or round
	Writes       Stat `json:"server_writes_per"`  // write-like system calls per frame, call or round
	RoundUS      Stat `json:"round_us,omitempty"` // broadcast: time until every connection had the frame
	RSSPerConn   Stat `json:"rss_bytes_per_conn,omitempty"`
	RSS          Stat `json:"rss_bytes,omitempty"`
	SlabPerConn  Stat `json:"kernel_slab_bytes_per_conn,omitempty"`
	RSSPerConnGC Stat `json:"rss_bytes_per_conn_after_gc,omitempty"`
	Errors       int64
	FailedRuns   int `json:"failed_runs,omitempty"`
	Incomplete   int `json:"incomplete_rounds,omitempty"`
	Repetitions  int `json:"repetitions"`
	FirstFailure string
}

// Aggregate groups runs by configuration, in the order they first appear.
func Aggregate(runs []Run) []Row {
	var keys []Key
	groups := map[Key][]Run{}
	for _, r := range runs {
		k := r.key()
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	rows := make([]Row, 0, len(keys))
	for _, k := range keys {
		var tp, p50, p99, p999, cpu, su, cu, round, per, rss, slab, rd, wr, pergc []float64
		var loadReps, cpuReps, roundReps, idleReps, gcReps []int // the repetition of each figure
		row := Row{Key: k}
		for _, r := range groups[k] {
			row.Repetitions++
			if r.Err != "" {
				row.FailedRuns++
				if row.FirstFailure == "" {
					row.FirstFailure = r.Err
				}
				continue
			}
			if l := r.Load; l != nil {
				loadReps, cpuReps = append(loadReps, r.Rep), append(cpuReps, r.Rep)
				tp = append(tp, l.FramesPerS)
				p50 = append(p50, l.Latency.P50)
				p99 = append(p99, l.Latency.P99)
				p999 = append(p999, l.Latency.P999)
				cpu = append(cpu, l.ServerCPUUSPerItem)
				su = append(su, l.ServerCPUUtil)
				cu = append(cu, l.ClientCPUUtil)
				rd = append(rd, l.ServerReadsPerItem)
				wr = append(wr, l.ServerWritesPerItem)
				if l.Mode == "broadcast" {
					roundReps = append(roundReps, r.Rep)
					round = append(round, l.RoundP50)
					row.Incomplete += l.Incomplete
				}
				row.Errors += l.Errors
			}
			if i := r.Idle; i != nil {
				idleReps, cpuReps = append(idleReps, r.Rep), append(cpuReps, r.Rep)
				per = append(per, i.PerConn)
				rss = append(rss, float64(i.RSS))
				slab = append(slab, i.SlabPerConn)
				if i.RSSAfterGC > 0 {
					gcReps = append(gcReps, r.Rep)
					pergc = append(pergc, i.PerConnAfterGC)
				}
				cpu = append(cpu, i.ServerCPUUS)
			}
		}
		row.Throughput, row.P50, row.P99, row.P999 = repStat(tp, loadReps), repStat(p50, loadReps), repStat(p99, loadReps), repStat(p999, loadReps)
		row.CPUPerItem, row.ServerUtil, row.ClientUtil = repStat(cpu, cpuReps), stat(su), stat(cu)
		row.Reads, row.Writes = stat(rd), stat(wr)
		row.RoundUS, row.RSSPerConn, row.RSS, row.SlabPerConn = repStat(round, roundReps), repStat(per, idleReps), stat(rss), stat(slab)
		row.RSSPerConnGC = repStat(pergc, gcReps)
		rows = append(rows, row)
	}
	return rows
}

// Find returns the row of a configuration.
func Find(rows []Row, scenario, impl string, conns, pipeline int) (Row, bool) {
	for _, r := range rows {
		if r.Scenario == scenario && r.Impl == impl && r.Conns == conns && r.Pipeline == pipeline {
			return r, true
		}
	}
	return Row{}, false
}

// Target is one of the goals, checked on the figures of one run.
type Target struct {
	Name   string  `json:"name"`
	Want   string  `json:"want"`
	Ratio  float64 `json:"ratio"` // of the medians
	Detail string  `json:"detail"`
	Met    bool    `json:"met"`
	Known  bool    `json:"measured"` // false when the run did not cover it

	// The ratio of each repetition, whose servers ran one after the other:
	// their median and range say how much of the verdict is the noise.
	PerRepMedian float64 `json:"per_repetition_median,omitempty"`
	PerRepMin    float64 `json:"per_repetition_min,omitempty"`
	PerRepMax    float64 `json:"per_repetition_max,omitempty"`
}

// Results is everything a run of the runner writes to latest.json.
type Results struct {
	Version  int       `json:"version"`
	Command  string    `json:"command"`
	Started  string    `json:"started"`
	Duration float64   `json:"duration_s"`
	Quick    bool      `json:"quick"`
	Library  string    `json:"library_commit"` // git commit of the library measured, "+dirty" with local changes
	Machine  Machine   `json:"machine"`
	Plan     any       `json:"plan"`
	Rows     []Row     `json:"rows"`
	Targets  []Target  `json:"targets"`
	Runs     []Run     `json:"runs"`
	Notes    []string  `json:"notes,omitempty"`
	Profiles []Profile `json:"profiles,omitempty"`
}

// Profile is a CPU profile taken of a server under a scenario.
type Profile struct {
	Impl     string `json:"impl"`
	Scenario string `json:"scenario"`
	File     string `json:"file"`
	Top      string `json:"top"`
}

// Load reads a results file.
func Load(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("report: %s: %w", path, err)
	}
	return &r, nil
}

// Write writes r as indented JSON.
func (r *Results) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
