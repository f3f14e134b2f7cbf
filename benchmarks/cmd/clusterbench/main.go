// Command clusterbench measures what a simplerpc cluster costs, with
// `simplerpc serve` processes (and the NATS server one of them embeds) as
// the servers, side by side with the same load on one server alone:
//
//	clusterbench -mode broadcast -conns 9000 -reps 3   # send-to-all: 3 nodes against 1
//	clusterbench -mode echo -conns 100 -reps 5         # echo: serve with --cluster against without
//
// Broadcast opens -conns connections, spread evenly over the nodes and
// over the -sources addresses, has the first one send a frame on opcode 1,
// and times each round until the last connection has it (as
// loadgen -mode broadcast does, but across several servers). Echo runs
// loadgen -mode echo against one node of a two-node cluster, and against
// serve without --cluster, and reports the throughput and the server's
// CPU time per echo.
//
// Servers run pinned to core 0 (taskset); run clusterbench itself on core
// 1, where the NATS process and the load generators then run:
//
//	flock /work/bench.lock taskset -c 1 bin/clusterbench -simplerpc bin/simplerpc -mode broadcast
//
// It prints one line per measurement and a summary; Linux only.
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
)

type options struct {
	mode      string
	simplerpc string
	loadgen   string
	conns     int
	nodes     int
	rounds    int
	reps      int
	pipeline  int
	duration  time.Duration
	sources   []string
	size      int
	timeout   time.Duration
	serverCPU string
	token     string // the cluster's NATS token, given to every serve process in its environment
}

func main() {
	var o options
	var sources string
	flag.StringVar(&o.mode, "mode", "broadcast", "broadcast or echo")
	flag.StringVar(&o.simplerpc, "simplerpc", "bin/simplerpc", "the simplerpc command")
	flag.StringVar(&o.loadgen, "loadgen", "bin/loadgen", "the loadgen command (-mode echo)")
	flag.IntVar(&o.conns, "conns", 9000, "connections in all (broadcast), or to the node (echo)")
	flag.IntVar(&o.nodes, "nodes", 3, "cluster nodes the broadcast connections are spread over")
	flag.IntVar(&o.rounds, "rounds", 20, "measured broadcast rounds per repetition (after 2 unmeasured)")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each side, alternating")
	flag.IntVar(&o.pipeline, "pipeline", 16, "echo frames in flight per connection")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time of each echo run")
	flag.StringVar(&sources, "sources", "127.0.0.2,127.0.0.3,127.0.0.4", "source addresses the broadcast connections are spread over")
	flag.IntVar(&o.size, "size", 256, "message size")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Second, "bound on starting, connecting and each round")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "taskset CPU list of the servers")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("clusterbench: ")
	o.sources = strings.Split(sources, ",")
	// serve --cluster embedded requires a token; the nodes present it.
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		log.Fatal(err)
	}
	o.token = hex.EncodeToString(tok)
	rlimit.RaiseNoFile()
	var err error
	switch o.mode {
	case "broadcast":
		err = compareBroadcast(o)
	case "echo":
		err = compareEcho(o)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// compareBroadcast alternates the broadcast on one server alone and on the
// cluster, -reps times each.
func compareBroadcast(o options) error {
	var alone, spread []float64 // each repetition's p50 round, µs
	for rep := range o.reps {
		for _, nodes := range []int{1, o.nodes} {
			p50, err := broadcastOnce(o, nodes)
			if err != nil {
				return fmt.Errorf("broadcast over %d node(s): %w", nodes, err)
			}
			fmt.Printf("rep %d  nodes %d  conns %d  p50 round %.0f µs\n", rep+1, nodes, o.conns, p50)
			if nodes == 1 {
				alone = append(alone, p50)
			} else {
				spread = append(spread, p50)
			}
		}
	}
	a, s := median(alone), median(spread)
	fmt.Printf("send-to-all to %d connections: 1 node %.0f µs, %d nodes %.0f µs (medians of %d reps of p50 over %d rounds): %.2fx\n",
		o.conns, a, o.nodes, s, o.reps, o.rounds, s/a)
	return nil
}

// compareEcho alternates echo against serve alone and against a node of a
// two-node cluster, -reps times each. It reports the throughput and the
// server's CPU time per echo, which a busy machine disturbs less.
func compareEcho(o options) error {
	var alone, member, aloneCPU, memberCPU []float64
	for rep := range o.reps {
		for _, clustered := range []bool{false, true} {
			res, err := echoOnce(o, clustered)
			if err != nil {
				return fmt.Errorf("echo (cluster %v): %w", clustered, err)
			}
			fmt.Printf("rep %d  cluster %-5v  conns %d  pipeline %d  %.0f echoes/s  server %.2f µs CPU/echo\n",
				rep+1, clustered, o.conns, o.pipeline, res.FramesPerS, res.ServerCPUUSPerItem)
			if clustered {
				member, memberCPU = append(member, res.FramesPerS), append(memberCPU, res.ServerCPUUSPerItem)
			} else {
				alone, aloneCPU = append(alone, res.FramesPerS), append(aloneCPU, res.ServerCPUUSPerItem)
			}
		}
	}
	a, m := median(alone), median(member)
	fmt.Printf("echo at %d connections x %d in flight (medians of %d reps): alone %.0f/s, cluster member %.0f/s: %+.1f%%; server CPU %.2f against %.2f µs/echo: %+.1f%%\n",
		o.conns, o.pipeline, o.reps, a, m, 100*(m-a)/a, median(aloneCPU), median(memberCPU),
		100*(median(memberCPU)-median(aloneCPU))/median(aloneCPU))
	return nil
}

// echoOnce runs loadgen -mode echo against serve, a cluster node or not.
func echoOnce(o options, clustered bool) (*report.LoadResult, error) {
	var procs []*server
	defer func() { stopAll(procs) }()
	var args []string
	if clustered {
		bus, err := startNATS(o)
		if err != nil {
			return nil, err
		}
		procs = append(procs, bus)
		other, err := startServer(o, "--cluster", bus.url, "--node", "other")
		if err != nil {
			return nil, err
		}
		procs = append(procs, other)
		args = []string{"--cluster", bus.url, "--node", "measured"}
	}
	srv, err := startServer(o, args...)
	if err != nil {
		return nil, err
	}
	procs = append(procs, srv)
	if clustered {
		if err := srv.waitLine(regexp.MustCompile(`msg="simplerpc cluster: node up" .*peer=`), o.timeout); err != nil {
			return nil, err
		}
	}
	out, err := exec.Command(o.loadgen, "-mode", "echo", "-impl", "simplerpc", "-addr", srv.addr,
		"-conns", fmt.Sprint(o.conns), "-pipeline", fmt.Sprint(o.pipeline), "-size", fmt.Sprint(o.size),
		"-duration", o.duration.String(), "-server-pid", fmt.Sprint(srv.cmd.Process.Pid)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("loadgen: %w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	var res report.LoadResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("loadgen output: %w", err)
	}
	if res.Errors != 0 {
		return nil, fmt.Errorf("loadgen counted %d errors", res.Errors)
	}
	return &res, nil
}

// server is a simplerpc serve process.
type server struct {
	cmd    *exec.Cmd
	lines  chan string
	exited chan struct{} // closed once the process has exited
	addr   string        // its listening address
	url    string        // the embedded NATS server's, if any
}

var (
	listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)
	natsRE      = regexp.MustCompile(`msg="embedded NATS listening" url=(\S+)`)
)

// startServer starts simplerpc serve pinned to -server-cpu, with args.
func startServer(o options, args ...string) (*server, error) {
	all := append([]string{"-c", o.serverCPU, o.simplerpc, "serve", "--addr", "127.0.0.1:0", "--size", fmt.Sprint(o.size),
		"--quiet"}, args...)
	return start(o, exec.Command("taskset", all...))
}

// startNATS starts the NATS server, in a serve process of its own that
// holds no connection, on the CPU clusterbench runs on.
func startNATS(o options) (*server, error) {
	return start(o, exec.Command(o.simplerpc, "serve", "--addr", "127.0.0.1:0", "--quiet",
		"--cluster", "embedded", "--node", "nats"))
}

// start runs cmd and waits for its listening line (and the NATS URL
// before it, when it has one).
func start(o options, cmd *exec.Cmd) (*server, error) {
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Env = append(os.Environ(), "SIMPLERPC_CLUSTER_TOKEN="+o.token)
	s := &server{cmd: cmd, lines: make(chan string, 256), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		_ = pw.Close()
		close(s.exited)
	}()
	deadline := time.After(o.timeout)
	for s.addr == "" {
		select {
		case l := <-s.lines:
			if m := natsRE.FindStringSubmatch(l); m != nil {
				s.url = m[1]
			}
			if m := listeningRE.FindStringSubmatch(l); m != nil {
				s.addr = m[1]
			}
		case <-s.exited:
			return nil, fmt.Errorf("%v: exited before listening", cmd.Args)
		case <-deadline:
			s.stop()
			return nil, fmt.Errorf("%v: not listening within %v", cmd.Args, o.timeout)
		}
	}
	return s, nil
}

// waitLine waits for a line of the server's log that matches re.
func (s *server) waitLine(re *regexp.Regexp, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-s.lines:
			if re.MatchString(l) {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("%v: no line matching %v within %v", s.cmd.Args, re, timeout)
		}
	}
}

// stop interrupts the server and waits for it.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// stopAll stops the servers, the last started first.
func stopAll(procs []*server) {
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
