package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Markdown renders the results as the tables of latest.md (and of
// docs/BENCHMARKS.md). imgDir prefixes the plot file names ("" for the
// results directory itself).
func Markdown(res *Results, imgDir string) string {
	var b strings.Builder
	m := res.Machine
	fmt.Fprintf(&b, "Run of %s, %.0f s: `%s`", res.Started, res.Duration, res.Command)
	if res.Library != "" {
		fmt.Fprintf(&b, ", library at commit %s", res.Library)
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "Machine: %d x %s, %d MiB, Linux %s, %s, RLIMIT_NOFILE %d. ", m.CPUs, m.CPUModel, m.MemTotalMB,
		m.Kernel, m.GoVersion, m.NoFile)
	if m.Pinned {
		b.WriteString("Server pinned to core 0, load generators to core 1 (taskset). ")
	}
	fmt.Fprintf(&b, "1-minute load average %.2f at the start (%s), %.2f at the end.\n\n", m.LoadStart,
		map[bool]string{true: "quiet", false: "not quiet: other work was running"}[m.Quiet], m.LoadEnd)
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(res.Notes) > 0 {
		b.WriteString("\n")
	}

	b.WriteString("### Targets\n\n")
	b.WriteString("The ratio is that of the medians; per repetition, the median and the range of the ratios of " +
		"each repetition, whose servers ran one after the other. A range that straddles the target is noise either way.\n\n")
	b.WriteString("| target | want | measured | ratio | per repetition | verdict |\n|---|---|---|---|---|---|\n")
	for _, t := range res.Targets {
		if !t.Known {
			fmt.Fprintf(&b, "| %s | %s | not measured in this run | | | |\n", t.Name, t.Want)
			continue
		}
		per := ""
		if t.PerRepMedian > 0 {
			per = fmt.Sprintf("%.2fx (%.2f–%.2f)", t.PerRepMedian, t.PerRepMin, t.PerRepMax)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2fx | %s | %s |\n", t.Name, t.Want, t.Detail, t.Ratio, per,
			map[bool]string{true: "**met**", false: "**missed**"}[t.Met])
	}

	echoTable(&b, res, "echo", "Echo: 256-byte frames, opcode 0 sent back", "rawgnet", "raw gnet", "")
	if rows := filter(res.Rows, "broadcast"); len(rows) > 0 {
		b.WriteString("\n### Send-to-all\n\n")
		b.WriteString("One connection sends a frame on opcode 1; the server sends it to every connection. " +
			"Time from the send until the last connection has it: median over the rounds of a run, then over the runs.\n\n")
		b.WriteString("| conns | server | time until all have it | spread | x raw gnet | server CPU per round | incomplete rounds |\n")
		b.WriteString("|---:|---|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			raw, _ := Find(res.Rows, "broadcast", "rawgnet", r.Conns, 0)
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %d |\n", r.Conns, Name(r.Impl)+failed(r), ms(r.RoundUS),
				spread(r.RoundUS), ratioOf(r.RoundUS, raw.RoundUS), ms(r.CPUPerItem), r.Incomplete)
		}
	}
	idleTable(&b, res, "idle", "Idle connections", "simplerpc", "")
	if rows := filter(res.Rows, "call"); len(rows) > 0 {
		b.WriteString("\n### Calls with replies\n\n")
		b.WriteString("Each library's own client: simplerpc's engine.Dialer and Client.Call (typed handler on the server), " +
			"net/rpc's jsonrpc client (method Bench.Echo). The request and reply are the same struct on both.\n\n")
		b.WriteString("| conns | in flight | server | calls/s | spread | x net/rpc | p50 µs | p99 µs | p99.9 µs | server CPU µs/call | load gen CPU |\n")
		b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			n, _ := Find(res.Rows, "call", "netrpc", r.Conns, r.Pipeline)
			fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Conns, r.Pipeline,
				Name(r.Impl)+failed(r), num(r.Throughput), spread(r.Throughput), ratioOf(r.Throughput, n.Throughput),
				us(r.P50), us(r.P99), us(r.P999), dec(r.CPUPerItem, 2), pct(r.ClientUtil))
		}
	}
	transportTables(&b, res)
	b.WriteString("\n### Plots\n\n")
	for _, p := range PlotFiles {
		fmt.Fprintf(&b, "![%s](%s%s)\n\n", p.Title, imgDir, p.File)
	}
	return b.String()
}

// echoTable writes the echo table of scenario, with a column of the
// throughput against base's; note, if set, follows the standard text.
func echoTable(b *strings.Builder, res *Results, scenario, title, base, baseName, note string) {
	rows := filter(res.Rows, scenario)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### %s\n\n", title)
	b.WriteString("Median of the repetitions; spread is half the range (max - min) over the median. " +
		"Latency is the round trip seen by the load generator. CPU from /proc/PID/stat (utime+stime)." + note + "\n\n")
	fmt.Fprintf(b, "| conns | in flight | server | frames/s | spread | x %s | p50 µs | p99 µs | p99.9 µs | server CPU µs/frame | server reads+writes per 100 frames | server CPU | load gen CPU |\n", baseName)
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		ref, _ := Find(res.Rows, scenario, base, r.Conns, r.Pipeline)
		fmt.Fprintf(b, "| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Conns, r.Pipeline,
			Name(r.Impl)+failed(r), num(r.Throughput), spread(r.Throughput), ratioOf(r.Throughput, ref.Throughput),
			us(r.P50), us(r.P99), us(r.P999), dec(r.CPUPerItem, 2), syscalls(r), pct(r.ServerUtil), pct(r.ClientUtil))
	}
}

// idleTable writes the idle table of scenario, with a column of the RSS
// per connection against base's.
func idleTable(b *strings.Builder, res *Results, scenario, title, base, note string) {
	rows := filter(res.Rows, scenario)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n### %s\n\n", title)
	b.WriteString("Server VmRSS with the connections open (each has had its -2 frame), minus VmRSS before the first, " +
		"divided by the connections. The connections come from several processes and source addresses 127.0.0.x." + note + "\n\n")
	gc := false
	for _, r := range rows {
		gc = gc || r.RSSPerConnGC.OK()
	}
	if gc {
		b.WriteString("After GC: once the server has run debug.FreeOSMemory (a collection, free memory returned to the system), " +
			"which leaves out the garbage of the handshakes.\n\n")
	}
	fmt.Fprintf(b, "| conns | server | RSS | RSS per conn | spread | x %s | accept CPU µs/conn | kernel slab per conn, both ends |", Name(base))
	if gc {
		fmt.Fprintf(b, " RSS per conn after GC | after GC x %s |", Name(base))
	}
	b.WriteString("\n|---:|---|---:|---:|---:|---:|---:|---:|")
	if gc {
		b.WriteString("---:|---:|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		s, _ := Find(res.Rows, scenario, base, r.Conns, 0)
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s |", r.Conns, Name(r.Impl)+failed(r), mib(r.RSS),
			bytesOf(r.RSSPerConn), spread(r.RSSPerConn), ratioOf(r.RSSPerConn, s.RSSPerConn), dec(r.CPUPerItem, 1),
			bytesOf(r.SlabPerConn))
		if gc {
			fmt.Fprintf(b, " %s | %s |", bytesOf(r.RSSPerConnGC), ratioOf(r.RSSPerConnGC, s.RSSPerConnGC))
		}
		b.WriteString("\n")
	}
}

// transportTables writes the tables of the TLS and WebSocket scenarios.
func transportTables(b *strings.Builder, res *Results) {
	echoTable(b, res, "tls-echo", "Echo over TLS", "nettls", Name("nettls"),
		" The load generator is a goroutine per connection on crypto/tls.")
	if rows := filter(res.Rows, "tls-handshake"); len(rows) > 0 {
		b.WriteString("\n### Full TLS handshakes\n\n")
		b.WriteString("Each of conns workers in a loop: a new connection, a full handshake (no session cache), " +
			"the -2 frame, one echo, a close. Latency is that whole cycle.\n\n")
		fmt.Fprintf(b, "| in flight | server | handshakes/s | spread | x %s | p50 µs | p99 µs | server CPU µs/handshake | server CPU | load gen CPU |\n", Name("nettls"))
		b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range rows {
			ref, _ := Find(res.Rows, "tls-handshake", "nettls", r.Conns, 0)
			fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Conns, Name(r.Impl)+failed(r),
				num(r.Throughput), spread(r.Throughput), ratioOf(r.Throughput, ref.Throughput), us(r.P50), us(r.P99),
				dec(r.CPUPerItem, 1), pct(r.ServerUtil), pct(r.ClientUtil))
		}
	}
	idleTable(b, res, "tls-idle", "Idle TLS connections", "nettls", " Each connection's handshake is done.")
	echoTable(b, res, "ws-echo", "Echo over WebSocket", "netws", Name("netws"),
		" The load generator is the gnet client, one masked text message per frame.")
	idleTable(b, res, "ws-idle", "Idle WebSocket connections", "netws",
		" simplerpc (plain TCP) is our own TCP connection, for comparison.")
}

func filter(rows []Row, scenario string) []Row {
	var out []Row
	for _, r := range rows {
		if r.Scenario == scenario {
			out = append(out, r)
		}
	}
	return out
}

func failed(r Row) string {
	if r.FailedRuns == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d runs failed)", r.FailedRuns, r.Repetitions)
}

// num formats a rate with thousands separators.
func num(s Stat) string {
	if !s.OK() {
		return "–"
	}
	return thousands(int64(math.Round(s.Median)))
}

func thousands(v int64) string {
	t := strconv.FormatInt(v, 10)
	var b strings.Builder
	for i, c := range t {
		if i > 0 && (len(t)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func spread(s Stat) string {
	if !s.OK() || s.N < 2 || s.Median == 0 {
		return "–"
	}
	return fmt.Sprintf("±%.0f%%", 50*(s.Max-s.Min)/s.Median)
}

func ratioOf(a, b Stat) string {
	if !a.OK() || !b.OK() || b.Median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a.Median/b.Median)
}

func us(s Stat) string {
	if !s.OK() {
		return "–"
	}
	if s.Median >= 100 {
		return thousands(int64(math.Round(s.Median)))
	}
	return fmt.Sprintf("%.1f", s.Median)
}

func ms(s Stat) string {
	if !s.OK() {
		return "–"
	}
	return fmt.Sprintf("%.2f ms", s.Median/1e3)
}

func dec(s Stat, prec int) string {
	if !s.OK() {
		return "–"
	}
	return strconv.FormatFloat(s.Median, 'f', prec, 64)
}

func pct(s Stat) string {
	if !s.OK() {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*s.Median)
}

func mib(s Stat) string {
	if !s.OK() {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", s.Median/(1<<20))
}

func bytesOf(s Stat) string {
	if !s.OK() {
		return "–"
	}
	return thousands(int64(math.Round(s.Median))) + " B"
}

// syscalls formats the server's reads and writes per 100 frames.
func syscalls(r Row) string {
	if !r.Reads.OK() || r.Reads.Median+r.Writes.Median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f + %.1f", 100*r.Reads.Median, 100*r.Writes.Median)
}
