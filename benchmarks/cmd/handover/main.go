// Command handover measures a live upgrade of simplerpc serve (issues 21
// and 30): many connected peers, one SIGHUP, and what the peers saw.
//
// With -rate (issue 30), it connects -conns peers (-ws of them over ws://,
// the rest over raw TCP) that only listen, and one more connection, the
// broadcaster, that sends serve a numbered send-to-all (opcode 1) -rate
// times a second; each peer checks the sequence it receives. After
// -before it sends serve SIGHUP, waits for the old process to exit, lets
// the broadcasts run -after more, stops them, waits for the last to
// arrive, and prints the disconnects, the deliveries expected and
// received, those lost, duplicated or out of order, the longest gap
// between two deliveries a peer saw (the stall: its maximum and its p99
// across peers), and the time from SIGHUP to the successor's readiness and
// to the old process's exit. It exits 1 when any delivery was lost,
// duplicated or out of order, or any peer was disconnected.
//
//	flock /work/bench.lock handover -serve ./simplerpc -conns 2000 -ws 1000 -rate 200 -procs 2
//
// Without -rate (issue 21), each connection sends a numbered echo each
// -every and times the answer, and the figures are the echoes lost and
// the longest wait for one.
//
// Both start serve (--upgrade handover unless -upgrade says otherwise) and
// -procs worker processes (this binary with -worker), each holding its
// share of the connections from a 127.0.1.x source address of its own;
// with -pin, serve and its successor run on CPU 0 and the workers on CPU 1.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run is a driver's settings, from the flags.
type run struct {
	serve          string
	conns, ws      int
	procs          int
	size, loops    int
	rate           int
	every          time.Duration
	before, after  time.Duration
	upgrade        string
	pin            bool
	drain          time.Duration
	upgradeTimeout time.Duration
	serveLog       string
}

func main() {
	isWorker := flag.Bool("worker", false, "run as a worker process (the driver starts these)")
	addr := flag.String("addr", "", "worker: the server's address")
	wsAddr := flag.String("wsaddr", "", "worker: the server's ws:// address (host:port)")
	source := flag.String("source", "", "worker: the source address")
	n := flag.Int("n", 0, "worker: TCP connections")
	nws := flag.Int("nws", 0, "worker: ws:// connections (with -rate)")
	send := flag.Bool("send", false, "worker: its first TCP connection is the broadcaster (with -rate)")
	var r run
	flag.StringVar(&r.serve, "serve", "simplerpc", "driver: the simplerpc binary")
	flag.IntVar(&r.conns, "conns", 10000, "driver: connections in all (with -rate: the peers, the broadcaster apart)")
	flag.IntVar(&r.ws, "ws", 0, "driver, with -rate: how many of -conns are ws:// (serve listens on ws://127.0.0.1:0/rpc too)")
	flag.IntVar(&r.procs, "procs", 4, "driver: worker processes")
	flag.IntVar(&r.size, "size", 256, "message size")
	flag.IntVar(&r.rate, "rate", 0, "send-to-all broadcasts a second, numbered; each peer checks their sequence (0: the echo measurement)")
	flag.DurationVar(&r.every, "every", 200*time.Millisecond, "without -rate: interval between a connection's echoes")
	flag.DurationVar(&r.before, "before", 3*time.Second, "driver: how long the clients run before the upgrade")
	flag.DurationVar(&r.after, "after", 3*time.Second, "driver: how long they run after the old process exited")
	flag.DurationVar(&r.drain, "drain", 10*time.Second, "driver, with -rate: how long the peers may take to receive the last broadcast once it is sent")
	flag.DurationVar(&r.upgradeTimeout, "upgrade-timeout", 60*time.Second, "driver: how long the upgrade may take, SIGHUP to the old process's exit")
	flag.IntVar(&r.loops, "loops", 1, "driver: serve's event loops")
	flag.StringVar(&r.upgrade, "upgrade", "handover", "driver: serve's --upgrade (handover or goaway)")
	flag.StringVar(&r.serveLog, "serve-log", "", "driver: also write serve's output (its successor's too) to this file")
	flag.BoolVar(&r.pin, "pin", true, "driver: pin serve to CPU 0 and the workers to CPU 1 (taskset)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("handover: ")
	if *isWorker {
		var err error
		if r.rate > 0 {
			err = castWorker(*addr, *wsAddr, *source, *n, *nws, r.size, r.rate, *send, r.drain)
		} else {
			err = worker(*addr, *source, *n, r.size, r.every)
		}
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	if r.rate == 0 {
		if err := drive(r); err != nil {
			log.Fatal(err)
		}
		return
	}
	t, err := driveCast(r)
	if err != nil {
		log.Fatal(err)
	}
	if !t.ok() {
		log.Print("FAIL: a peer was disconnected, or a delivery lost, duplicated or out of order")
		os.Exit(1)
	}
}

// pinned returns the command name and arguments, run under taskset on cpu
// when pin is set.
func pinned(pin bool, cpu string, name string, args ...string) *exec.Cmd {
	if pin {
		return exec.Command("taskset", append([]string{"-c", cpu, name}, args...)...)
	}
	return exec.Command(name, args...)
}

// server is serve, started by the driver, and the lines it logs (its
// successor's too: it inherits the same stderr).
type server struct {
	cmd    *exec.Cmd
	lines  chan string
	pid    int      // the first process's
	addrs  []string // what it listens on, in the order of the --addr flags
	mu     sync.Mutex
	tail   []string // the last lines, for an error
	exited chan error
}

// startServe starts serve with addrs (TCP first) and extra flags, and
// waits for it to listen.
func startServe(r run, addrs []string, maxConns int) (*server, error) {
	args := []string{"serve", "--size", strconv.Itoa(r.size), "--loops", strconv.Itoa(r.loops), "--quiet",
		"--max-conns", strconv.Itoa(maxConns), "--upgrade", r.upgrade, "--grace", "10s"}
	for _, a := range addrs {
		args = append(args, "--addr", a)
	}
	cmd := pinned(r.pin, "0", r.serve, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A pipe of the driver's own rather than StderrPipe: Wait on the first
	// process must not close it, the successor writing to it still.
	rd, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = wr
	err = cmd.Start()
	_ = wr.Close()
	if err != nil {
		_ = rd.Close()
		return nil, fmt.Errorf("start %s: %w", r.serve, err)
	}
	s := &server{cmd: cmd, lines: make(chan string, 4096), exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	var copyTo io.Writer = io.Discard
	if r.serveLog != "" {
		f, err := os.Create(r.serveLog)
		if err != nil {
			s.kill()
			return nil, err
		}
		copyTo = f
	}
	go func() {
		defer rd.Close()
		sc := bufio.NewScanner(io.TeeReader(rd, copyTo))
		for sc.Scan() {
			s.mu.Lock()
			s.tail = append(s.tail, sc.Text())
			if len(s.tail) > 40 {
				s.tail = s.tail[1:]
			}
			s.mu.Unlock()
			select {
			case s.lines <- sc.Text():
			default: // nobody waits for it
			}
		}
		close(s.lines)
	}()
	for range addrs[1:] {
		m, err := s.waitLine(`msg="also listening" addr=(\S+)`, 30*time.Second)
		if err != nil {
			s.kill()
			return nil, err
		}
		s.addrs = append(s.addrs, m[1])
	}
	m, err := s.waitLine(`msg=listening addr=(\S+) .* pid=(\d+)`, 30*time.Second)
	if err != nil {
		s.kill()
		return nil, err
	}
	s.addrs = append([]string{m[1]}, s.addrs...)
	s.pid, _ = strconv.Atoi(m[2])
	return s, nil
}

// kill kills serve's process group: the first process and its successor.
func (s *server) kill() { _ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) }

// logTail logs serve's last lines.
func (s *server) logTail() {
	s.mu.Lock()
	defer s.mu.Unlock()
	log.Printf("serve's last lines:\n%s", strings.Join(s.tail, "\n"))
}

// waitLine returns the submatches of the next line matching pattern.
func (s *server) waitLine(pattern string, timeout time.Duration) ([]string, error) {
	re := regexp.MustCompile(pattern)
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				return nil, fmt.Errorf("serve's output ended before %q", pattern)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m, nil
			}
		case <-deadline:
			return nil, fmt.Errorf("no line %q within %v", pattern, timeout)
		}
	}
}

// upgraded is what one upgrade took.
type upgraded struct {
	sighup time.Time
	ready  time.Duration // SIGHUP to the old process's "successor ready" line
	exit   time.Duration // SIGHUP to the old process's exit
	handed string        // the old process's "connections handed over" line
	pid    int           // the successor's
}

// upgrade sends serve SIGHUP and waits for the successor to be ready and
// the old process to exit.
func (s *server) upgrade(timeout time.Duration) (upgraded, error) {
	u := upgraded{sighup: time.Now()}
	if err := syscall.Kill(s.pid, syscall.SIGHUP); err != nil {
		return u, err
	}
	m, err := s.waitLine(`msg="upgrade: connections handed over" .*|msg="successor ready; going away" .*`, timeout)
	if err != nil {
		return u, err
	}
	if strings.Contains(m[0], "handed over") {
		u.handed = m[0]
		if _, err = s.waitLine(`msg="successor ready; going away" .*`, timeout); err != nil {
			return u, err
		}
	}
	u.ready = time.Since(u.sighup)
	up, err := s.waitLine(`msg=upgraded pid=(\d+)`, timeout)
	if err != nil {
		return u, err
	}
	u.pid, _ = strconv.Atoi(up[1])
	select {
	case err := <-s.exited:
		if err != nil {
			return u, fmt.Errorf("the old serve: %w", err)
		}
	case <-time.After(timeout):
		return u, fmt.Errorf("the old serve did not exit within %v", timeout)
	}
	u.exit = time.Since(u.sighup)
	return u, nil
}
