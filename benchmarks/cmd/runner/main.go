// Command runner runs every benchmark scenario against every comparison
// server, side by side, and writes results/latest.json, results/latest.md
// and the plots. benchmarks/run builds the programs and calls it.
//
//	runner [--quick] [--reps N] [--only echo,broadcast,idle,call,tls,ws] [--handshakes 16,64] [--wait-quiet 20m] [--profile]
//
// tls runs the scenarios tls-echo, tls-handshake and tls-idle against
// simplerpc-tls and nettls; ws runs ws-echo and ws-idle against
// simplerpc-ws, netws and (idle only) simplerpc over plain TCP.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/procstat"
	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
)

// Plan is what a run measures.
type Plan struct {
	Size     int      `json:"size"`
	Reps     int      `json:"repetitions"`
	Servers  []string `json:"servers"`
	Warmup   string   `json:"warmup"`
	Duration string   `json:"duration"`

	Echo [][2]int `json:"echo_conns_in_flight"`

	BroadcastConns  int `json:"broadcast_conns"`
	BroadcastRounds int `json:"broadcast_rounds"`

	IdlePoints  []int `json:"idle_conns"`
	IdlePerProc int   `json:"idle_conns_per_holder"`
	IdleSettle  string

	Calls [][2]int `json:"calls_conns_in_flight"`

	TLSServers     []string `json:"tls_servers"`
	WSServers      []string `json:"ws_servers"`
	TransportEcho  [][2]int `json:"tls_ws_echo_conns_in_flight"`
	HandshakeConns []int    `json:"tls_handshakes_in_flight"`
	TransportIdle  []int    `json:"tls_ws_idle_conns"`

	warmup, duration, settle time.Duration
}

func fullPlan() Plan {
	return Plan{
		Size: 256, Reps: 5, Servers: []string{"simplerpc", "rawgnet", "netcareful", "netnaive"},
		warmup: 500 * time.Millisecond, duration: 2 * time.Second,
		Echo:           [][2]int{{1, 1}, {1, 16}, {100, 1}, {100, 16}, {1000, 1}, {1000, 16}},
		BroadcastConns: 10000, BroadcastRounds: 20,
		IdlePoints: []int{1000, 10000, 19000}, IdlePerProc: 5000, settle: 1500 * time.Millisecond,
		Calls: [][2]int{{1, 1}, {1, 16}, {100, 1}, {100, 16}},

		TLSServers: []string{"simplerpc-tls", "nettls"}, WSServers: []string{"simplerpc-ws", "netws"},
		TransportEcho: [][2]int{{100, 1}, {100, 16}}, HandshakeConns: []int{16, 64}, TransportIdle: []int{10000},
	}
}

func quickPlan() Plan {
	p := fullPlan()
	p.Reps = 2
	p.warmup, p.duration = 250*time.Millisecond, 800*time.Millisecond
	p.Echo = [][2]int{{100, 1}, {100, 16}, {1000, 1}, {1000, 16}}
	p.BroadcastConns, p.BroadcastRounds = 2000, 10
	p.IdlePoints, p.settle = []int{1000, 5000}, time.Second
	p.Calls = [][2]int{{100, 1}}
	// TLS and WebSocket: echo and handshakes only, so that --quick stays
	// near 2 minutes (with idle steps of 1,000 it took 127 s).
	p.TransportEcho, p.HandshakeConns, p.TransportIdle = [][2]int{{100, 16}}, []int{16}, nil
	return p
}

// override replaces parts of the plan with the command line's.
func (p *Plan) override(echo, calls, idle, handshakes string, bcast int) error {
	if echo != "" {
		cfgs, err := parsePairs(echo)
		if err != nil {
			return fmt.Errorf("--echo: %w", err)
		}
		p.Echo = cfgs
	}
	if calls != "" {
		cfgs, err := parsePairs(calls)
		if err != nil {
			return fmt.Errorf("--calls: %w", err)
		}
		p.Calls = cfgs
	}
	if idle != "" {
		p.IdlePoints = nil
		for _, f := range strings.Split(idle, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || len(p.IdlePoints) > 0 && n <= p.IdlePoints[len(p.IdlePoints)-1] {
				return fmt.Errorf("--idle: %q: want increasing counts", idle)
			}
			p.IdlePoints = append(p.IdlePoints, n)
		}
	}
	if handshakes != "" {
		p.HandshakeConns = nil
		for _, f := range strings.Split(handshakes, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				return fmt.Errorf("--handshakes: %q: want counts", handshakes)
			}
			p.HandshakeConns = append(p.HandshakeConns, n)
		}
	}
	if bcast > 0 {
		p.BroadcastConns = bcast
	}
	return nil
}

// parsePairs parses "100x16,1000x1".
func parsePairs(s string) ([][2]int, error) {
	var out [][2]int
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(f, "x")
		c, err1 := strconv.Atoi(a)
		p, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || c < 1 || p < 1 {
			return nil, fmt.Errorf("%q: want CONNSxINFLIGHT", f)
		}
		out = append(out, [2]int{c, p})
	}
	return out, nil
}

type runner struct {
	plan    Plan
	bin     string
	out     string
	pin     bool
	runs    []report.Run
	notes   []string
	verbose bool
}

func main() {
	quick := flag.Bool("quick", false, "a short run (under 2 minutes): fewer connections, shorter, 2 repetitions")
	reps := flag.Int("reps", 0, "repetitions of each measurement (default 5, 2 with --quick)")
	only := flag.String("only", "", "comma-separated scenarios to run: echo, broadcast, idle, call, tls, ws (default all)")
	servers := flag.String("servers", "", "comma-separated servers (default simplerpc,rawgnet,netcareful,netnaive)")
	bin := flag.String("bin", "bin", "directory of the built benchserver, loadgen and hold")
	out := flag.String("out", "results", "directory for latest.json, latest.md and the plots")
	waitQuiet := flag.Duration("wait-quiet", 0, "first wait up to this long for the 1-minute load average to drop below --quiet-load")
	quietLoad := flag.Float64("quiet-load", 0.8, "the load average that counts as quiet")
	profile := flag.Bool("profile", false, "also take CPU profiles of the servers under echo, send-to-all and calls, and heap profiles of 10,000 idle connections")
	command := flag.String("command", "", "the command line to record (benchmarks/run passes its own)")
	render := flag.String("render", "", "only re-render the tables and plots of this results file into --out")
	echoCfg := flag.String("echo", "", "echo configurations instead of the plan's, as CONNSxINFLIGHT,... (100x16,1000x1)")
	callCfg := flag.String("calls", "", "call configurations instead of the plan's, as CONNSxINFLIGHT,...")
	idleCfg := flag.String("idle", "", "idle connection counts instead of the plan's, as N,... (each below the descriptor limit)")
	bcastConns := flag.Int("broadcast-conns", 0, "send-to-all connections instead of the plan's")
	hsCfg := flag.String("handshakes", "", "TLS handshakes in flight instead of the plan's, as N,... (16,64)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("runner: ")
	if *render != "" {
		res, err := report.Load(*render)
		if err != nil {
			log.Fatal(err)
		}
		finish(res, *out)
		return
	}

	r := &runner{bin: *bin, out: *out, pin: runtime.NumCPU() >= 2, verbose: true}
	if *quick {
		r.plan = quickPlan()
	} else {
		r.plan = fullPlan()
	}
	if *reps > 0 {
		r.plan.Reps = *reps
	}
	if *servers != "" {
		r.plan.Servers = strings.Split(*servers, ",")
	}
	if err := r.plan.override(*echoCfg, *callCfg, *idleCfg, *hsCfg, *bcastConns); err != nil {
		log.Fatal(err)
	}
	r.plan.Warmup, r.plan.Duration, r.plan.IdleSettle = r.plan.warmup.String(), r.plan.duration.String(), r.plan.settle.String()
	scen := map[string]bool{"echo": true, "broadcast": true, "idle": true, "call": true, "tls": true, "ws": true}
	if *only != "" {
		scen = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			scen[s] = true
		}
	}
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		log.Fatal(err)
	}
	rlimit.RaiseNoFile()
	if !r.pin {
		r.notes = append(r.notes, "Fewer than 2 CPUs: server and load generator were not pinned to separate cores.")
	}

	lib := libraryCommit() // before waiting: benchmarks/run has just built this tree
	quiet := waitForQuiet(*waitQuiet, *quietLoad)
	start := time.Now()
	res := &report.Results{Version: 1, Command: *command, Started: start.UTC().Format(time.RFC3339), Quick: *quick}
	if res.Command == "" {
		res.Command = strings.Join(os.Args, " ")
	}
	res.Library = lib
	res.Machine = machine()
	res.Machine.Quiet = quiet
	res.Machine.Pinned = r.pin
	if !quiet {
		r.notes = append(r.notes, fmt.Sprintf("The 1-minute load average was %.2f (not below %.2f) when the run began: "+
			"other processes shared the cores, so the figures are noisier than on an idle machine.", res.Machine.LoadStart, *quietLoad))
	}

	for rep := 1; rep <= r.plan.Reps; rep++ {
		log.Printf("repetition %d of %d", rep, r.plan.Reps)
		order := rotate(r.plan.Servers, rep-1)
		if scen["echo"] {
			for _, c := range r.plan.Echo {
				for _, impl := range order {
					r.echo("echo", rep, impl, c[0], c[1])
				}
			}
		}
		if scen["call"] {
			for _, c := range r.plan.Calls {
				for _, impl := range rotate([]string{"simplerpc", "netrpc"}, rep-1) {
					r.call(rep, impl, c[0], c[1])
				}
			}
		}
		if scen["broadcast"] {
			for _, impl := range order {
				r.broadcast(rep, impl)
			}
		}
		if scen["idle"] {
			for _, impl := range order {
				r.idle("idle", r.plan.IdlePoints, rep, impl, false)
			}
		}
		if scen["tls"] {
			tlsOrder := rotate(r.plan.TLSServers, rep-1)
			for _, c := range r.plan.TransportEcho {
				for _, impl := range tlsOrder {
					r.echo("tls-echo", rep, impl, c[0], c[1])
				}
			}
			for _, n := range r.plan.HandshakeConns {
				for _, impl := range tlsOrder {
					r.handshakes(rep, impl, n)
				}
			}
			for _, impl := range tlsOrder {
				if len(r.plan.TransportIdle) > 0 {
					r.idle("tls-idle", r.plan.TransportIdle, rep, impl, true)
				}
			}
		}
		if scen["ws"] {
			wsOrder := rotate(r.plan.WSServers, rep-1)
			for _, c := range r.plan.TransportEcho {
				for _, impl := range wsOrder {
					r.echo("ws-echo", rep, impl, c[0], c[1])
				}
			}
			// Our own plain TCP connection beside the WebSocket ones.
			for _, impl := range rotate(append(slices.Clone(r.plan.WSServers), "simplerpc"), rep-1) {
				if len(r.plan.TransportIdle) > 0 {
					r.idle("ws-idle", r.plan.TransportIdle, rep, impl, true)
				}
			}
		}
	}
	if *profile {
		res.Profiles = r.profiles()
	}

	res.Duration = time.Since(start).Seconds()
	res.Machine.LoadEnd = loadavg()
	res.Plan = r.plan
	res.Runs = r.runs
	res.Notes = r.notes
	finish(res, r.out)
}

// finish aggregates the runs and writes latest.json, latest.md and the
// plots into dir.
func finish(res *report.Results, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	res.Rows = report.Aggregate(res.Runs)
	res.Targets = report.Targets(res.Rows)
	if err := res.Write(filepath.Join(dir, "latest.json")); err != nil {
		log.Fatal(err)
	}
	if _, err := report.WritePlots(res, dir); err != nil {
		log.Fatal(err)
	}
	md := "# simplerpc benchmarks: latest run\n\n" + report.Markdown(res, "")
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Print(md)
	log.Printf("done in %.0f s: %s", res.Duration, filepath.Join(dir, "latest.json"))
}

func rotate(s []string, k int) []string {
	if len(s) == 0 {
		return nil
	}
	k %= len(s)
	return append(slices.Clone(s[k:]), s[:k]...)
}

func (r *runner) record(run report.Run, err error) {
	if err != nil {
		run.Err = err.Error()
		log.Printf("  %s %s conns=%d pipeline=%d: FAILED: %v", run.Scenario, run.Impl, run.Conns, run.Pipeline, err)
	} else if r.verbose {
		log.Printf("  %s", summary(run))
	}
	r.runs = append(r.runs, run)
}

func summary(run report.Run) string {
	s := fmt.Sprintf("%-9s %-10s conns=%-5d", run.Scenario, run.Impl, run.Conns)
	if l := run.Load; l != nil {
		switch l.Mode {
		case "broadcast":
			s += fmt.Sprintf(" all-have-it p50 %.2f ms, cpu/round %.0f µs", l.RoundP50/1e3, l.ServerCPUUSPerItem)
		default:
			s += fmt.Sprintf(" x%-2d %9.0f/s p50 %7.0f µs p99 %7.0f µs srv %.2f µs/op (cpu %3.0f%%, client %3.0f%%)",
				run.Pipeline, l.FramesPerS, l.Latency.P50, l.Latency.P99, l.ServerCPUUSPerItem,
				100*l.ServerCPUUtil, 100*l.ClientCPUUtil)
		}
		if l.Errors > 0 {
			s += fmt.Sprintf(" ERRORS %d", l.Errors)
		}
	}
	if i := run.Idle; i != nil {
		s += fmt.Sprintf(" rss %.1f MiB, %.0f B/conn, fds %d", float64(i.RSS)/(1<<20), i.PerConn, i.FDs)
	}
	return s
}

// echo runs the echo scenario (echo, tls-echo or ws-echo: the load
// generator speaks the transport of impl).
func (r *runner) echo(scenario string, rep int, impl string, conns, pipe int) {
	run := report.Run{Scenario: scenario, Rep: rep, Impl: impl, Conns: conns, Pipeline: pipe}
	srv, err := r.startServer(impl)
	if err != nil {
		r.record(run, err)
		return
	}
	run.Load, err = r.load(r.plan.duration+60*time.Second, "-mode", "echo", "-impl", impl, "-addr", srv.addr,
		"-conns", fmt.Sprint(conns), "-pipeline", fmt.Sprint(pipe), "-size", fmt.Sprint(r.plan.Size),
		"-duration", r.plan.duration.String(), "-warmup", r.plan.warmup.String(), "-server-pid", fmt.Sprint(srv.pid))
	srv.stop()
	r.record(run, err)
}

// handshakes runs the full TLS handshakes of tls-handshake, n at a time,
// from the loopback addresses 127.0.0.2-9.
func (r *runner) handshakes(rep int, impl string, n int) {
	run := report.Run{Scenario: "tls-handshake", Rep: rep, Impl: impl, Conns: n}
	srv, err := r.startServer(impl)
	if err != nil {
		r.record(run, err)
		return
	}
	var sources []string
	for i := 2; i < 10; i++ {
		sources = append(sources, fmt.Sprintf("127.0.0.%d", i))
	}
	run.Load, err = r.load(r.plan.duration+60*time.Second, "-mode", "handshake", "-impl", impl, "-addr", srv.addr,
		"-conns", fmt.Sprint(n), "-size", fmt.Sprint(r.plan.Size), "-sources", strings.Join(sources, ","),
		"-duration", r.plan.duration.String(), "-warmup", r.plan.warmup.String(), "-server-pid", fmt.Sprint(srv.pid))
	srv.stop()
	r.record(run, err)
}

func (r *runner) call(rep int, impl string, conns, pipe int) {
	run := report.Run{Scenario: "call", Rep: rep, Impl: impl, Conns: conns, Pipeline: pipe}
	srv, err := r.startServer(impl)
	if err != nil {
		r.record(run, err)
		return
	}
	run.Load, err = r.load(r.plan.duration+60*time.Second, "-mode", "call", "-impl", impl, "-addr", srv.addr,
		"-conns", fmt.Sprint(conns), "-pipeline", fmt.Sprint(pipe),
		"-duration", r.plan.duration.String(), "-warmup", r.plan.warmup.String(), "-server-pid", fmt.Sprint(srv.pid))
	srv.stop()
	r.record(run, err)
}

func (r *runner) broadcast(rep int, impl string) {
	run := report.Run{Scenario: "broadcast", Rep: rep, Impl: impl, Conns: r.plan.BroadcastConns}
	srv, err := r.startServer(impl)
	if err != nil {
		r.record(run, err)
		return
	}
	run.Load, err = r.load(3*time.Minute, "-mode", "broadcast", "-impl", impl, "-addr", srv.addr,
		"-conns", fmt.Sprint(r.plan.BroadcastConns), "-rounds", fmt.Sprint(r.plan.BroadcastRounds),
		"-size", fmt.Sprint(r.plan.Size), "-server-pid", fmt.Sprint(srv.pid))
	srv.stop()
	r.record(run, err)
}

// idle opens idle connections in steps (points) against one server
// process, with hold processes of at most IdlePerProc connections, each
// from its own source address, over the transport of impl, and reads the
// server's RSS at each step once it has settled; with gc, also after the
// server has collected its garbage and returned free memory to the system
// (which changes what the next step measures: the TLS and WebSocket
// scenarios have one step).
func (r *runner) idle(scenario string, points []int, rep int, impl string, gc bool) {
	srv, err := r.startServer(impl)
	if err != nil {
		r.record(report.Run{Scenario: scenario, Rep: rep, Impl: impl, Conns: points[0]}, err)
		return
	}
	defer srv.stop()
	var holders []*holder
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	time.Sleep(r.plan.settle)
	baseFDs, _ := procstat.FDs(srv.pid)
	slab0, _ := procstat.Slab()
	base, err := procstat.RSS(srv.pid)
	if err != nil {
		r.record(report.Run{Scenario: scenario, Rep: rep, Impl: impl, Conns: points[0]}, err)
		return
	}
	have, prev := 0, 0
	for _, point := range points {
		run := report.Run{Scenario: scenario, Rep: rep, Impl: impl, Conns: point}
		cpu0, _ := procstat.CPUTicks(srv.pid)
		t0 := time.Now()
		var batch []*holder
		for have < point {
			n := min(r.plan.IdlePerProc, point-have)
			source := fmt.Sprintf("127.0.0.%d", 10+len(holders))
			h, err := r.startHolder(srv.addr, n, source, servers.TransportOf(impl))
			if err != nil {
				r.record(run, err)
				return
			}
			holders = append(holders, h)
			batch = append(batch, h)
			have += n
		}
		for _, h := range batch {
			if err := <-h.ready; err != nil {
				r.record(run, err)
				return
			}
		}
		// Every connection has had its -2 frame, so the server opened it.
		connect := time.Since(t0)
		time.Sleep(r.plan.settle)
		rss, err := procstat.RSS(srv.pid)
		if err != nil {
			r.record(run, err)
			return
		}
		cpu1, _ := procstat.CPUTicks(srv.pid)
		fds, _ := procstat.FDs(srv.pid)
		slab, _ := procstat.Slab()
		run.Idle = &report.IdleResult{Conns: point, Holders: len(holders), BaseRSS: base, RSS: rss, FDs: fds,
			PerConn: float64(rss-base) / float64(point), ConnectS: connect.Seconds(),
			ServerCPUUS: float64(cpu1-cpu0) / float64(procstat.ClockTicks()) * 1e6 / float64(point-prev),
			SlabPerConn: float64(slab-slab0) / float64(point)}
		if gc {
			if err := srv.freeOS(); err != nil {
				r.record(run, err)
				return
			}
			if run.Idle.RSSAfterGC, err = procstat.RSS(srv.pid); err != nil {
				r.record(run, err)
				return
			}
			run.Idle.PerConnAfterGC = float64(run.Idle.RSSAfterGC-base) / float64(point)
		}
		prev = point
		if fds-baseFDs < point {
			err = fmt.Errorf("server holds %d descriptors for %d connections", fds-baseFDs, point)
		}
		r.record(run, err)
	}
}
