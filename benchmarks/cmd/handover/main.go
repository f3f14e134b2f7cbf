// Command handover measures a live upgrade of simplerpc serve (issue 21):
// many connected clients, one SIGHUP, and what the clients saw: how many
// were disconnected, the longest pause any of them saw, and how many
// frames were lost.
//
//	flock /work/bench.lock handover -serve ./simplerpc -conns 10000 -procs 4
//
// It starts serve (--upgrade handover unless -upgrade says otherwise) and
// -procs worker processes (this binary with -worker), each holding its
// share of the connections from a 127.0.1.x source address of its own,
// every connection sending a numbered echo each -every and timing the
// answer. After -before it sends serve SIGHUP, waits for the old process
// to exit, lets the clients run -after more, then stops them and prints
// the totals. The pause a client saw is the longest wait for one echo
// (max RTT); the gap is the longest time between two echoes of one
// connection (-every plus the pause).
package main

import (
	"bufio"
	"encoding/json"
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

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
)

func main() {
	isWorker := flag.Bool("worker", false, "run as a worker process (the driver starts these)")
	addr := flag.String("addr", "", "worker: the server's address")
	source := flag.String("source", "", "worker: the source address")
	n := flag.Int("n", 0, "worker: connections")
	serve := flag.String("serve", "simplerpc", "driver: the simplerpc binary")
	conns := flag.Int("conns", 10000, "driver: connections in all")
	procs := flag.Int("procs", 4, "driver: worker processes")
	size := flag.Int("size", 256, "message size")
	every := flag.Duration("every", 200*time.Millisecond, "interval between a connection's echoes")
	before := flag.Duration("before", 3*time.Second, "driver: how long the clients run before the upgrade")
	after := flag.Duration("after", 3*time.Second, "driver: how long they run after the old process exited")
	loops := flag.Int("loops", 1, "driver: serve's event loops")
	upgrade := flag.String("upgrade", "handover", "driver: serve's --upgrade (handover or goaway)")
	pin := flag.Bool("pin", true, "driver: pin serve to CPU 0 and the workers to CPU 1 (taskset)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("handover: ")
	if *isWorker {
		if err := worker(*addr, *source, *n, *size, *every); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := drive(*serve, *conns, *procs, *size, *loops, *every, *before, *after, *upgrade, *pin); err != nil {
		log.Fatal(err)
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

func drive(serve string, conns, procs, size, loops int, every, before, after time.Duration, upgrade string, pin bool) (err error) {
	rlimit.RaiseNoFile() // the processes inherit it
	srv := pinned(pin, "0", serve, "serve", "--addr", "127.0.0.1:0", "--size", strconv.Itoa(size),
		"--loops", strconv.Itoa(loops), "--quiet", "--max-conns", strconv.Itoa(conns+100), "--upgrade", upgrade,
		"--grace", "10s")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := srv.StderrPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start %s: %w", serve, err)
	}
	defer func() { _ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL) }()
	lines := make(chan string, 1024)
	var logMu sync.Mutex
	var logTail []string // serve's last lines, for an error
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			logTail = append(logTail, sc.Text())
			if len(logTail) > 40 {
				logTail = logTail[1:]
			}
			logMu.Unlock()
			lines <- sc.Text()
		}
		close(lines)
	}()
	defer func() {
		if err != nil {
			logMu.Lock()
			log.Printf("serve's last lines:\n%s", strings.Join(logTail, "\n"))
			logMu.Unlock()
		}
	}()
	addr, err := waitLine(lines, `msg=listening addr=(\S+) .* pid=(\d+)`, 30*time.Second)
	if err != nil {
		return err
	}
	oldPid, _ := strconv.Atoi(addr[2])
	log.Printf("serve pid %d on %s; %d connections in %d processes, an echo each %v", oldPid, addr[1], conns, procs, every)

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	ws := make([]proc, procs)
	for i := range ws {
		k := conns / procs
		if i < conns%procs {
			k++
		}
		cmd := pinned(pin, "1", exe, "-worker", "-addr", addr[1], "-source", fmt.Sprintf("127.0.1.%d", i+1),
			"-n", strconv.Itoa(k), "-size", strconv.Itoa(size), "-every", every.String())
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		defer func() { _ = cmd.Process.Kill() }()
		ws[i] = proc{cmd: cmd, stdin: in, out: bufio.NewReader(out)}
	}
	for i, w := range ws {
		l, err := w.out.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, "ready") {
			return fmt.Errorf("worker %d: %q %v", i, l, err)
		}
	}
	log.Printf("all connected; the upgrade in %v", before)
	time.Sleep(before)
	t0 := time.Now()
	if err := syscall.Kill(oldPid, syscall.SIGHUP); err != nil {
		return err
	}
	handed, err := waitLine(lines, `msg="upgrade: connections handed over" .*|msg="successor ready; going away" .*`, 60*time.Second)
	if err != nil {
		return err
	}
	log.Printf("%s", handed[0])
	up, err := waitLine(lines, `msg=upgraded pid=(\d+)`, 60*time.Second)
	if err != nil {
		return err
	}
	if err := srv.Wait(); err != nil {
		return fmt.Errorf("the old serve: %w", err)
	}
	t1 := time.Now()
	upgradeTook := t1.Sub(t0)
	newPid, _ := strconv.Atoi(up[1])
	go func() {
		for range lines { // the successor's output
		}
	}()
	log.Printf("upgraded to pid %d in %v (SIGHUP to the old process's exit)", newPid, upgradeTook.Round(time.Millisecond))
	time.Sleep(after)
	for _, w := range ws {
		_ = w.stdin.Close()
	}
	var total result
	hist := hdrhistogram.New(1, 60_000_000, 3)
	// The longest wait for an echo sent during the upgrade (from SIGHUP to
	// the old process's exit, and one interval either side), and outside it.
	var during, outside int64
	from, to := t0.Add(-every).UnixMilli(), t1.Add(every).UnixMilli()
	for i, w := range ws {
		var r result
		if err := json.NewDecoder(w.out).Decode(&r); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
		_ = w.cmd.Wait()
		total.Conns += r.Conns
		total.Disconnects += r.Disconnects
		total.Lost += r.Lost
		total.Sent += r.Sent
		total.Echoed += r.Echoed
		total.MaxRTT = max(total.MaxRTT, r.MaxRTT)
		total.MaxGap = max(total.MaxGap, r.MaxGap)
		total.Errors = append(total.Errors, r.Errors...)
		for j, v := range r.Buckets {
			at := r.Start + int64(j)*bucketSpan.Milliseconds()
			if at+bucketSpan.Milliseconds() > from && at < to {
				during = max(during, v)
			} else {
				outside = max(outside, v)
			}
		}
		if r.HistJSON != nil {
			hist.Merge(hdrhistogram.Import(r.HistJSON))
		}
	}
	_ = syscall.Kill(newPid, syscall.SIGTERM)
	fmt.Printf("connections %d, disconnected %d, frames lost %d, echoes %d of %d sent\n",
		total.Conns, total.Disconnects, total.Lost, total.Echoed, total.Sent)
	fmt.Printf("longest pause (max wait for one echo) %v; longest gap between two echoes %v (interval %v)\n",
		time.Duration(total.MaxRTT)*time.Microsecond, time.Duration(total.MaxGap)*time.Microsecond, every)
	fmt.Printf("longest wait for an echo sent during the upgrade %v; outside it %v\n", us(during), us(outside))
	fmt.Printf("echo RTT p50 %v p99 %v p99.9 %v p99.99 %v\n", us(hist.ValueAtQuantile(50)), us(hist.ValueAtQuantile(99)),
		us(hist.ValueAtQuantile(99.9)), us(hist.ValueAtQuantile(99.99)))
	fmt.Printf("upgrade: SIGHUP to the old process's exit %v\n", upgradeTook.Round(time.Millisecond))
	for i, e := range total.Errors {
		if i == 5 {
			break
		}
		fmt.Println("error:", e)
	}
	return nil
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// waitLine returns the submatches of the next line matching pattern.
func waitLine(lines <-chan string, pattern string, timeout time.Duration) ([]string, error) {
	re := regexp.MustCompile(pattern)
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
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
