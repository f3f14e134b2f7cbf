package main

import (
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
)

// machine describes this machine.
func machine() report.Machine {
	m := report.Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), NoFile: rlimit.RaiseNoFile(),
		LoadStart: loadavg()}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kb, _ := strconv.Atoi(f[0])
					m.MemTotalMB = kb >> 10
				}
			}
		}
	}
	return m
}

// loadavg returns the 1-minute load average.
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// waitForQuiet checks the 1-minute load every 30 s until it is below
// limit or max has passed, and reports whether it got quiet.
func waitForQuiet(max time.Duration, limit float64) bool {
	deadline := time.Now().Add(max)
	for {
		l := loadavg()
		if l >= 0 && l < limit {
			return true
		}
		if time.Now().After(deadline) {
			if max > 0 {
				log.Printf("load average still %.2f after %v: running anyway", l, max)
			}
			return false
		}
		log.Printf("load average %.2f, waiting for it to drop below %.2f", l, limit)
		time.Sleep(30 * time.Second)
	}
}

// libraryCommit returns the git commit of the library (the parent
// directory), with "+dirty" when codec, handler or engine have local
// changes; "" outside a git checkout.
func libraryCommit() string {
	out, err := exec.Command("git", "-C", "..", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--", "codec", "handler", "engine", "go.mod").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}
