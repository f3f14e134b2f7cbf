// This file holds the server-wide memory bound: its default, derived from
// the memory the process may use, and how the loops keep to it as soon as
// paused peers push past it.

package engine

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
)

// Where the server-wide caps of [WithMaxBuffered] came from, as
// [Server.MaxBuffered] reports it.
const (
	boundOption   = "WithMaxBuffered" // set by the application
	boundGoLimit  = "GOMEMLIMIT"      // a quarter of the Go runtime's memory limit
	boundCgroup   = "cgroup"          // a quarter of the cgroup's memory limit
	boundPhysical = "physical memory" // a sixteenth of the machine's memory
	boundNone     = "none"            // no cap: nothing to derive it from
)

// defaultBuffered derives the server-wide caps from the memory the process
// may use: a quarter of it for the bytes all connections hold, half of
// that each way. Bytes in gnet's buffers cost up to about twice their
// count in the heap (its ring buffers grow by doubling) and the garbage
// collector's headroom doubles a heap again at GOGC=100, so a quarter
// keeps a server flooded by peers that never read within its limit. With
// no limit set, a quarter of the machine's memory counts as the limit: a
// server rarely has the machine to itself, and a flood then peaks near an
// eighth of it.
func defaultBuffered(fsys fs.FS, goLimit int64) (outbound, inbound int, source string) {
	limit, source := memoryLimit(fsys, goLimit)
	if limit <= 0 {
		return 0, 0, boundNone
	}
	if source == boundPhysical {
		limit /= 4
	}
	each := int(min(limit/8, math.MaxInt32))
	return each, each, source
}

// memoryLimit returns the memory the process may use and where that came
// from: GOMEMLIMIT (or debug.SetMemoryLimit) when set, else the limit of
// the process's cgroup (v2 memory.max, v1 memory.limit_in_bytes, the
// smallest on the path to the root), else the machine's memory
// (/proc/meminfo). fsys is the root file system; goLimit is what
// debug.SetMemoryLimit(-1) returns. 0 when none is known.
func memoryLimit(fsys fs.FS, goLimit int64) (int64, string) {
	physical := meminfoTotal(fsys)
	if goLimit > 0 && goLimit < math.MaxInt64 {
		return goLimit, boundGoLimit
	}
	if n := cgroupLimit(fsys); n > 0 && (physical == 0 || n < physical) {
		return n, boundCgroup
	}
	if physical > 0 {
		return physical, boundPhysical
	}
	return 0, boundNone
}

// cgroupLimit returns the smallest memory limit on the path of the
// process's cgroup to the root, 0 when none is set or none can be read.
func cgroupLimit(fsys fs.FS) int64 {
	b, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0
	}
	best := int64(0)
	for line := range strings.Lines(string(b)) {
		// hierarchy-ID:controllers:path; v2 is "0::/path".
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir, file = "sys/fs/cgroup", "memory.max"
		case containsField(parts[1], "memory"):
			dir, file = "sys/fs/cgroup/memory", "memory.limit_in_bytes"
		default:
			continue
		}
		// The path as the process sees it, then each parent up to the
		// mount's root (inside a container the mount's root is often the
		// process's own cgroup, and the path names the host's).
		for p := path.Clean("/" + parts[2]); ; p = path.Dir(p) {
			if n := readLimit(fsys, path.Join(dir, p, file)); n > 0 && (best == 0 || n < best) {
				best = n
			}
			if p == "/" {
				break
			}
		}
	}
	return best
}

func containsField(list, name string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if f == name {
			return true
		}
	}
	return false
}

// readLimit reads a cgroup memory limit file: a number of bytes, or "max"
// (v2) or a number near 2^63 (v1) for none.
func readLimit(fsys fs.FS, name string) int64 {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n <= 0 || n >= math.MaxInt64/2 {
		return 0
	}
	return n
}

// meminfoTotal returns the machine's memory from /proc/meminfo, 0 if it
// cannot be read.
func meminfoTotal(fsys fs.FS) int64 {
	f, err := fsys.Open("proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil || kb <= 0 {
			return 0
		}
		return kb << 10
	}
	return 0
}

// deriveBuffered sets the server-wide caps the application did not set.
func (c *config) deriveBuffered() {
	if c.bufferedSet {
		c.bufferedFrom = boundOption
		return
	}
	c.maxOutTotal, c.maxInTotal, c.bufferedFrom = defaultBuffered(os.DirFS("/"), debug.SetMemoryLimit(-1))
}

// MaxBuffered returns the server-wide caps in force, in bytes (0: none),
// and where they came from: "WithMaxBuffered" (the application's),
// "GOMEMLIMIT", "cgroup", "physical memory" (derived, see
// [WithMaxBuffered]) or "none". It is safe for concurrent use.
func (s *Server) MaxBuffered() (outbound, inbound int, source string) {
	cfg := &s.side.cfg
	return cfg.maxOutTotal, cfg.maxInTotal, cfg.bufferedFrom
}

// hold notes the unread input a paused connection holds (n, 0 once it
// reads again or closes) and keeps the loop's share of the server's
// inbound cap at once: gnet reads a paused peer's socket into memory as
// fast as the peer sends, and the once-a-second sweep would let many
// such peers hold gigabytes in between. A running sum, so the check costs
// nothing per frame. On the loop.
func (l *loop) hold(c *conn, n int) {
	x := c.extra()
	l.heldIn += n - x.heldIn
	x.heldIn = n
	l.heldPeak = max(l.heldPeak, l.heldIn)
	if share := l.side.cfg.maxInTotal / max(l.side.cfg.loops, 1); share > 0 && l.heldIn > share {
		l.trim(share, (*conn).inBytes, ErrInboundFull)
	}
}

// trimOutbound keeps the loop's share of the server's outbound cap while
// some connection is backed up, on every trimEvery-th recheck: output
// grows only while peers read slower than they are sent to. On the loop.
func (l *loop) trimOutbound() {
	if l.trimCount++; l.trimCount%trimEvery != 0 {
		return
	}
	if share := l.side.cfg.maxOutTotal / max(l.side.cfg.loops, 1); share > 0 {
		l.trim(share, (*conn).outBytes, ErrSlowConsumer)
	}
}

// trimEvery spaces the outbound cap's looks on the recheck timer: 4 x 5 ms.
const trimEvery = 4
