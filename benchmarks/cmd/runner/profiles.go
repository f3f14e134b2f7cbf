// This file takes the profiles of a run (--profile): CPU profiles of the
// servers under load, and heap profiles of idle connections.

package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
)

// profiles takes CPU profiles of the simplerpc server under the echo and
// send-to-all scenarios, and of raw gnet under the 100 x 16 echo (what is
// left per frame over the ceiling is read side by side from the two), with
// `go tool pprof -top` of each; then heap profiles of idle connections
// (heapProfiles).
func (r *runner) profiles() []report.Profile {
	dir := filepath.Join(r.out, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Print(err)
		return nil
	}
	var out []report.Profile
	type sc struct {
		name string
		args []string
		impl string // the server, simplerpc if empty
	}
	d := (3 * r.plan.duration).String()
	scs := []sc{
		{"echo-100x16", []string{"-mode", "echo", "-conns", "100", "-pipeline", "16", "-duration", d}, ""},
		{"echo-100x16", []string{"-mode", "echo", "-conns", "100", "-pipeline", "16", "-duration", d}, "rawgnet"},
		{"echo-100x1", []string{"-mode", "echo", "-conns", "100", "-pipeline", "1", "-duration", d}, ""},
		{"echo-1000x16", []string{"-mode", "echo", "-conns", "1000", "-pipeline", "16", "-duration", d}, ""},
		{"broadcast", []string{"-mode", "broadcast", "-conns", fmt.Sprint(r.plan.BroadcastConns), "-rounds", "100"}, ""},
		{"call-100x1", []string{"-mode", "call", "-conns", "100", "-pipeline", "1", "-duration", d}, ""},
		{"call-1x1", []string{"-mode", "call", "-conns", "1", "-pipeline", "1", "-duration", d}, ""},
	}
	for _, s := range scs {
		impl := s.impl
		if impl == "" {
			impl = "simplerpc"
		}
		file := filepath.Join(dir, impl+"-"+s.name+".pprof")
		srv, err := r.startServer(impl, "-cpuprofile", file)
		if err != nil {
			log.Print(err)
			continue
		}
		args := append(s.args, "-impl", impl, "-addr", srv.addr, "-server-pid", strconv.Itoa(srv.pid))
		// The call scenarios include the library's client: profile it too.
		clientFile := ""
		if strings.HasPrefix(s.name, "call") {
			clientFile = filepath.Join(dir, "simplerpc-"+s.name+"-client.pprof")
			args = append(args, "-cpuprofile", clientFile)
		}
		_, err = r.load(3*time.Minute, args...)
		srv.stop()
		if err != nil {
			log.Print(err)
			continue
		}
		out = append(out, report.Profile{Impl: impl, Scenario: s.name, File: file, Top: r.top("benchserver", file, "-nodecount=35")})
		if clientFile != "" {
			out = append(out, report.Profile{Impl: "simplerpc client (load generator)", Scenario: s.name, File: clientFile,
				Top: r.top("loadgen", clientFile, "-nodecount=35")})
		}
		log.Printf("profile %s", file)
	}
	return append(out, r.heapProfiles(dir)...)
}

// heapIdleConns is how many idle connections a heap profile holds.
const heapIdleConns = 10000

// heapProfiles takes a heap profile of simplerpc's and raw gnet's servers
// each holding heapIdleConns idle connections: benchserver records every
// allocation (-memprofile) and writes what is in use when it is stopped,
// its connections still open. `go tool pprof -sample_index=inuse_space
// -top` of each says what an idle connection holds, by allocation site.
func (r *runner) heapProfiles(dir string) []report.Profile {
	var out []report.Profile
	for _, impl := range []string{"simplerpc", "rawgnet"} {
		scenario := fmt.Sprintf("idle-%d-heap", heapIdleConns)
		file := filepath.Join(dir, impl+"-"+scenario+".pprof")
		if err := r.heapProfile(impl, file); err != nil {
			log.Printf("heap profile %s: %v", impl, err)
			continue
		}
		top := r.top("benchserver", file, "-sample_index=inuse_space", "-nodecount=25")
		out = append(out, report.Profile{Impl: impl, Scenario: scenario, File: file, Top: top})
		log.Printf("profile %s", file)
	}
	return out
}

// heapProfile opens heapIdleConns idle connections to a server started
// with -memprofile file, and stops the server while they are open.
func (r *runner) heapProfile(impl, file string) error {
	srv, err := r.startServer(impl, "-memprofile", file)
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.stop()
		}
	}()
	var holders []*holder
	defer func() {
		for _, h := range holders {
			h.stop()
		}
	}()
	for have := 0; have < heapIdleConns; {
		n := min(r.plan.IdlePerProc, heapIdleConns-have)
		h, err := r.startHolder(srv.addr, n, fmt.Sprintf("127.0.0.%d", 10+len(holders)), servers.TCP)
		if err != nil {
			return err
		}
		holders = append(holders, h)
		have += n
	}
	for _, h := range holders {
		if err := <-h.ready; err != nil {
			return err
		}
	}
	time.Sleep(r.plan.settle)
	srv.stop() // writes the profile, then closes the connections
	stopped = true
	return nil
}

// top writes `go tool pprof -top` of a profile of bin, with args, beside
// it (its .top.txt), and returns it.
func (r *runner) top(bin, file string, args ...string) string {
	args = append(append([]string{"tool", "pprof", "-top"}, args...), filepath.Join(r.bin, bin), file)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		log.Printf("pprof %s: %v", file, err)
	}
	_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+".top.txt", out, 0o644)
	return string(out)
}
