package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// decodeReport decodes bench --json output.
func decodeReport(t *testing.T, out string) benchReport {
	t.Helper()
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("bench --json output %q: %v", out, err)
	}
	return rep
}

// checkOrdered fails unless the percentiles are positive and ordered.
func checkOrdered(t *testing.T, name string, s latencyStats) {
	t.Helper()
	v := []float64{s.Min, s.P50, s.P90, s.P99, s.P999, s.Max}
	if s.Count == 0 || v[0] <= 0 {
		t.Errorf("%s: %+v: want measurements above 0", name, s)
	}
	for i := 1; i < len(v); i++ {
		if v[i] < v[i-1] {
			t.Errorf("%s: %+v: percentiles out of order", name, s)
		}
	}
}

func TestBenchEcho(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--quiet")
	r := runBin(t, 30*time.Second, "bench", "--addr", addr, "--conns", "8", "--duration", "1s",
		"--pipeline", "4", "--size", "100", "--json")
	r.wantCode(t, 0)
	rep := decodeReport(t, r.stdout)
	if rep.Mode != "echo" || rep.Conns != 8 || rep.Config.Pipeline != 4 || rep.MessageSize != 256 || rep.PayloadBytes != 100 {
		t.Errorf("report %+v does not match the flags", rep)
	}
	if rep.Frames <= 0 || rep.FramesPerS <= 0 || rep.BytesPerS != rep.FramesPerS*256 {
		t.Errorf("frames %d, %v frames/s, %v B/s: want a positive throughput", rep.Frames, rep.FramesPerS, rep.BytesPerS)
	}
	if rep.ElapsedS < 0.9 || rep.ElapsedS > 5 {
		t.Errorf("elapsed %v s for --duration 1s", rep.ElapsedS)
	}
	if rep.Latency.Count != rep.Frames {
		t.Errorf("%d latencies for %d frames", rep.Latency.Count, rep.Frames)
	}
	checkOrdered(t, "latency", rep.Latency)
	if rep.Errors != 0 {
		t.Errorf("%d errors", rep.Errors)
	}
	if !strings.Contains(r.stderr, "connected 8 connections") {
		t.Errorf("stderr %q has no set-up line", r.stderr)
	}
	// The progress line is for terminals only.
	if strings.Contains(r.stderr, "\r") {
		t.Errorf("stderr %q has a progress line although it is not a terminal", r.stderr)
	}
}

func TestBenchTableAndPlot(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--quiet")
	file := filepath.Join(t.TempDir(), "latency.png")
	r := runBin(t, 30*time.Second, "bench", "--addr", addr, "--conns", "4", "--duration", "500ms",
		"--size", "1000", "--plot", file)
	r.wantCode(t, 0)
	for _, want := range []string{"echoes", "frames/s", "latency", "p50", "p99.9", "round trip", "errors       0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table has no %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "--size 1000 does not fit the server's message size 256: using 256") {
		t.Errorf("stderr %q does not say the size was reduced", r.stderr)
	}
	png, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Errorf("%s is not a PNG (%d bytes)", file, len(png))
	}
}

func TestBenchBroadcast(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--quiet")
	r := runBin(t, 30*time.Second, "bench", "--addr", addr, "--broadcast", "--conns", "20", "--rounds", "10", "--json")
	r.wantCode(t, 0)
	rep := decodeReport(t, r.stdout)
	if rep.Mode != "broadcast" || rep.Rounds != 10 || rep.IncompleteRounds != 0 || rep.Errors != 0 {
		t.Errorf("report %+v: want 10 complete rounds without errors", rep)
	}
	if rep.Frames != 20*10 {
		t.Errorf("%d deliveries, want 200", rep.Frames)
	}
	if rep.RoundLatency == nil || rep.RoundLatency.Count != 10 {
		t.Fatalf("round latencies %+v, want 10", rep.RoundLatency)
	}
	checkOrdered(t, "round", *rep.RoundLatency)
	checkOrdered(t, "delivery", rep.Latency)
	// A round ends with its last delivery.
	if rep.RoundLatency.Max < rep.Latency.Max*0.99 {
		t.Errorf("slowest round %vµs is faster than the slowest delivery %vµs", rep.RoundLatency.Max, rep.Latency.Max)
	}
}

func TestBenchSources(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--quiet")
	r := runBin(t, 30*time.Second, "bench", "--addr", addr, "--sources", "3", "--conns", "6",
		"--duration", "300ms", "--json")
	r.wantCode(t, 0)
	rep := decodeReport(t, r.stdout)
	if rep.Sources != 3 || rep.Conns != 6 || rep.Config.Sources != 3 {
		t.Errorf("report %+v: want 6 connections from 3 sources", rep)
	}
}

// TestBenchFDLimit runs bench under a low file-descriptor limit: it must
// say so and measure with the connections it could open.
func TestBenchFDLimit(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--quiet")
	r := runCommand(t, 30*time.Second, "", "/bin/sh", "-c",
		`ulimit -n 48 && exec "$0" "$@"`, binary, "bench", "--addr", addr, "--conns", "100",
		"--duration", "300ms", "--json")
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "out of file descriptors after") || !strings.Contains(r.stderr, "RLIMIT_NOFILE soft 48, hard 48") {
		t.Errorf("stderr %q does not explain the file-descriptor limit", r.stderr)
	}
	rep := decodeReport(t, r.stdout)
	if rep.Conns <= 0 || rep.Conns >= 100 || rep.Config.Conns != 100 || rep.Frames <= 0 {
		t.Errorf("report %+v: want a run with fewer than 100 connections", rep)
	}
}

func TestBenchErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other, _ := testServer(t) // opcode 0 fails: no echo comes back
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no conns", []string{"--conns", "0"}, 2, "--conns must be at least 1"},
		{"bad duration", []string{"--duration", "-1s"}, 2, "--duration must be positive"},
		{"bad plot format", []string{"--plot", filepath.Join(dir, "x.gif")}, 2, "the extension must be one of .png"},
		{"plot directory missing", []string{"--plot", filepath.Join(dir, "no", "x.png")}, 2, "does not exist"},
		{"sources off loopback", []string{"--addr", "unix:///tmp/x.sock", "--sources", "2"}, 2, "--sources 2 needs an IPv4 loopback target"},
		{"addr without port", []string{"--addr", "localhost"}, 2, `--addr "localhost" is not of the form`},
		{"addr scheme", []string{"--addr", "http://x"}, 2, `unsupported scheme "http"`},
		{"argument", []string{"extra"}, 2, `unknown command "extra" for "simplerpc bench"`},
		{"refused", []string{"--addr", closedAddr(t)}, 1, "connection refused"},
		{"not a demo server", []string{"--addr", other, "--conns", "2", "--duration", "300ms"}, 1, "no frame was measured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, 20*time.Second, append([]string{"bench"}, tc.args...)...)
			r.wantCode(t, tc.code)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
		})
	}
}

// TestBenchInterrupt checks that SIGINT ends the run early and still
// prints its results.
func TestBenchInterrupt(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t, "--quiet")
	b := startBin(t, "bench", "--addr", addr, "--conns", "4", "--duration", "1m", "--json")
	b.waitLine(t, reLine(`^connected 4 connections`), 20*time.Second)
	b.interrupt(t)
	if code := b.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("bench exited %d after SIGINT\nstderr:\n%s", code, b.stderr.String())
	}
	rep := decodeReport(t, b.stdout.String())
	if !rep.Interrupted || rep.ElapsedS > 30 {
		t.Errorf("report %+v: want an interrupted run", rep)
	}
}

// TestBenchServerKilled: when the server dies under it (kill -9), bench
// stops as soon as every connection is lost, prints its results and exits
// 1, in echo and in broadcast mode.
func TestBenchServerKilled(t *testing.T) {
	t.Parallel()
	const duration = time.Minute
	for _, mode := range [][]string{nil, {"--broadcast", "--rounds", "1000000000"}} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			srv := startBin(t, "serve", "--addr", "127.0.0.1:0", "--size", "256", "--quiet")
			addr := srv.waitLine(t, listeningRE, 20*time.Second)[1]
			b := startBin(t, append([]string{"bench", "--addr", addr, "--conns", "50", "--duration", duration.String(), "--json"}, mode...)...)
			b.waitLine(t, reLine(`^connected 50 connections`), 20*time.Second)
			if err := srv.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if code := b.wait(t, duration/2); code != 1 {
				t.Fatalf("bench exited %d after the server was killed, want 1\nstderr:\n%s", code, b.stderr.String())
			}
			rep := decodeReport(t, b.stdout.String())
			if rep.Disconnects != 50 || rep.Errors < 50 {
				t.Errorf("report %+v: want 50 disconnects counted as errors", rep)
			}
			if rep.ElapsedS > duration.Seconds()/2 || time.Since(start) > duration/2 {
				t.Errorf("elapsed %v s: bench went on after losing every connection", rep.ElapsedS)
			}
			if want := "bench: lost all 50 connections"; !strings.Contains(b.stderr.String(), want) {
				t.Errorf("stderr %q does not contain %q", b.stderr.String(), want)
			}
		})
	}
}

// TestBenchSomeLost: a server that closes one connection in five keeps the
// run going with the others to --duration; bench exits 1 and counts them.
func TestBenchSomeLost(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	r := handler.NewRouter()
	r.On(opEcho, func(c handler.Conn, data []byte) error {
		if doomed, _ := c.Value().(bool); doomed {
			return c.Close()
		}
		return c.SendRaw(opEcho, data)
	})
	addr := startEngine(t, r, engine.WithOnConnect(func(c handler.Conn) { c.SetValue(n.Add(1)%5 == 0) }))
	res := runBin(t, 60*time.Second, "bench", "--addr", addr, "--conns", "50", "--duration", "1s", "--json")
	res.wantCode(t, 1)
	rep := decodeReport(t, res.stdout)
	if rep.Disconnects != 10 || rep.Frames == 0 {
		t.Errorf("report %+v: want 10 disconnects and echoes from the others", rep)
	}
	if rep.ElapsedS < 0.9 {
		t.Errorf("elapsed %v s: the run stopped before --duration 1s with 40 connections left", rep.ElapsedS)
	}
	// A server that closes a connection while its peer's frames are still
	// unread there sends a reset, not a FIN: either is a loss.
	closed := "bench: lost 10 of 50 connections during the run (first: the server closed the connection)"
	reset := "bench: lost 10 of 50 connections during the run (first: the server reset the connection)"
	if !strings.Contains(res.stderr, closed) && !strings.Contains(res.stderr, reset) {
		t.Errorf("stderr %q contains neither %q nor %q", res.stderr, closed, reset)
	}
}

// TestBenchBroadcastIncomplete: a send-to-all that reaches 34 of 50
// connections makes every round incomplete; bench says how many never got
// the frame and exits 1.
func TestBenchBroadcastIncomplete(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	var srv atomic.Pointer[engine.Server] // set before any client connects
	r := handler.NewRouter()
	r.On(opBroadcast, func(_ handler.Conn, data []byte) error {
		return srv.Load().Group("some").Send(opBroadcast, json.RawMessage(data))
	})
	srv.Store(newEngine(t, r, engine.WithOnConnect(func(c handler.Conn) {
		if n.Add(1) <= 34 {
			_ = srv.Load().Group("some").Join(c.ID())
		}
	})))
	res := runBin(t, 60*time.Second, "bench", "--addr", srv.Load().Addr().String(), "--broadcast", "--conns", "50",
		"--rounds", "2", "--timeout", "2s", "--json")
	res.wantCode(t, 1)
	rep := decodeReport(t, res.stdout)
	if rep.Rounds != 2 || rep.IncompleteRounds != 2 || rep.MissedDeliveries != 32 || rep.Frames != 68 {
		t.Errorf("report %+v: want 2 incomplete rounds, 68 deliveries and 32 missing", rep)
	}
	for _, want := range []string{
		"warning: round 1: 34 of 50 connections got the frame within 2s",
		"bench: 2 of 2 rounds did not reach every connection (32 deliveries missing; at worst 16 of 50 connections never got the frame)",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q does not contain %q", res.stderr, want)
		}
	}
}

// pythonEchoServer starts a fake server that echoes opcode 0 as the
// original Python server does: json.dumps's ", " and ": " separators, the
// keys in another order ("p" before "t"), padded with spaces.
func pythonEchoServer(t *testing.T) string {
	t.Helper()
	return fakeServer(t, func(c net.Conn) {
		if announce(c) != nil {
			return
		}
		buf := make([]byte, fakeSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			text := strings.TrimRight(string(buf), " ")
			var m map[string]json.RawMessage
			if !strings.HasPrefix(text, "0{") || json.Unmarshal([]byte(text[1:]), &m) != nil {
				continue
			}
			out := fmt.Sprintf(`0{"p": %s, "t": %s}`, m["p"], m["t"])
			if len(out) > fakeSize {
				continue
			}
			if _, err := c.Write(padded(fakeSize, out)); err != nil {
				return
			}
		}
	})
}

// TestBenchPythonEcho: bench reads echoes in any well-formed form
// (PROTOCOL §1.1), not only its own compact one (issue 32, item 8).
func TestBenchPythonEcho(t *testing.T) {
	t.Parallel()
	addr := pythonEchoServer(t)
	r := runBin(t, 30*time.Second, "bench", "--addr", addr, "--conns", "2", "--duration", "500ms",
		"--pipeline", "2", "--size", "50", "--json")
	r.wantCode(t, 0)
	rep := decodeReport(t, r.stdout)
	if rep.Errors != 0 || rep.Frames == 0 || rep.Latency.Count != rep.Frames {
		t.Errorf("%d errors, %d echoes, %d latencies: want no errors and every echo timed", rep.Errors, rep.Frames, rep.Latency.Count)
	}
}
