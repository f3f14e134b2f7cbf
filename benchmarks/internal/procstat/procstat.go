// Package procstat reads a process's CPU time and resident memory from
// /proc (Linux).
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

var (
	tickOnce sync.Once
	ticks    = 100
)

// ClockTicks returns the kernel's clock ticks per second (getconf
// CLK_TCK), 100 if getconf is missing.
func ClockTicks() int {
	tickOnce.Do(func() {
		out, err := exec.Command("getconf", "CLK_TCK").Output()
		if err != nil {
			return
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			ticks = n
		}
	})
	return ticks
}

// CPUTicks returns utime+stime of process pid, in clock ticks.
func CPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat reads fields 14 and 15 (utime, stime) of a /proc/pid/stat
// line. The command name, field 2, is in parentheses and may hold spaces,
// so counting starts after its closing parenthesis.
func parseStat(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: malformed stat %.40q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: short stat %.40q", b)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("procstat: malformed stat %.40q", b)
	}
	return u + s, nil
}

// CPUSeconds returns utime+stime of process pid in seconds.
func CPUSeconds(pid int) (float64, error) {
	t, err := CPUTicks(pid)
	return float64(t) / float64(ClockTicks()), err
}

// RSS returns VmRSS of process pid in bytes.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseRSS(b)
}

func parseRSS(b []byte) (int64, error) {
	return meminfoField(b, "VmRSS:")
}

// FDs returns the number of open file descriptors of process pid.
func FDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// Slab returns the kernel's slab memory (Slab in /proc/meminfo) in bytes:
// where socket structures live, which no process's RSS counts.
func Slab() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return meminfoField(b, "Slab:")
}

func meminfoField(b []byte, name string) (int64, error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return kb << 10, nil
			}
		}
		break
	}
	return 0, fmt.Errorf("procstat: no %s line", name)
}

// Syscalls returns the read-like and write-like system calls process pid
// made (syscr and syscw in /proc/pid/io).
func Syscalls(pid int) (reads, writes int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseIO(b)
}

func parseIO(b []byte) (reads, writes int64, err error) {
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if perr != nil {
			continue
		}
		switch k {
		case "syscr":
			reads = n
			found++
		case "syscw":
			writes = n
			found++
		}
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("procstat: no syscr/syscw in io")
	}
	return reads, writes, nil
}
