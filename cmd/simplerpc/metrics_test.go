package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// httpGet fetches url within timeout and returns the body.
func httpGet(t *testing.T, url string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// TestServeMetrics checks --metrics-addr: /metrics has the server's, the
// Go runtime's and the process's metrics, /debug/pprof/ answers with
// --pprof, and bench --metrics-url reports what changed on the server.
func TestServeMetrics(t *testing.T) {
	t.Parallel()
	p, addr := startServe(t, "--metrics-addr", "127.0.0.1:0", "--pprof", "--quiet")
	maddr := p.waitLine(t, reLine(`msg="metrics listening" addr=(\S+)`), 10*time.Second)[1]
	runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{}`).wantCode(t, 0)
	body := httpGet(t, "http://"+maddr+"/metrics", 10*time.Second)
	for _, want := range []string{
		"simplerpc_connections_accepted_total 1",
		`simplerpc_frames_received_total{opcode="0"} 1`,
		"simplerpc_connections_open ",
		"go_goroutines ",
		"process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if got := httpGet(t, "http://"+maddr+"/debug/pprof/", 10*time.Second); !strings.Contains(got, "goroutine") {
		t.Errorf("/debug/pprof/ does not list profiles:\n%s", got)
	}
	r := runBin(t, 60*time.Second, "bench", "--addr", addr, "--conns", "2", "--duration", "300ms", "--json",
		"--metrics-url", "http://"+maddr+"/metrics")
	r.wantCode(t, 0)
	var rep struct {
		Frames int64              `json:"frames"`
		Server map[string]float64 `json:"server_metrics"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, r.stdout)
	}
	if got := rep.Server["simplerpc_connections_accepted_total"]; got != 2 {
		t.Errorf("accepted delta %v, want 2 (%v)", got, rep.Server)
	}
	if got := rep.Server["simplerpc_frames_received_total"]; got < float64(rep.Frames) {
		t.Errorf("frames received delta %v, less than the %d echoes bench counted", got, rep.Frames)
	}
	r = runBin(t, 60*time.Second, "bench", "--addr", addr, "--conns", "1", "--duration", "200ms",
		"--metrics-url", "http://"+maddr+"/metrics")
	r.wantCode(t, 0)
	if !strings.Contains(r.stdout, "server metrics") || !strings.Contains(r.stdout, "connections_accepted_total  1") {
		t.Errorf("bench table lacks the server metrics:\n%s", r.stdout)
	}
}

func TestMetricsFlagErrors(t *testing.T) {
	t.Parallel()
	r := runBin(t, 20*time.Second, "serve", "--addr", "127.0.0.1:30999", "--metrics-addr", "127.0.0.1:30999")
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "is the protocol's --addr") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = runBin(t, 20*time.Second, "serve", "--addr", "127.0.0.1:0", "--metrics-addr", "nowhere")
	r.wantCode(t, 2)
	r = runBin(t, 20*time.Second, "bench", "--metrics-url", "ftp://x/metrics")
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, `--metrics-url "ftp://x/metrics": want http://host:port/metrics`) {
		t.Errorf("stderr %q", r.stderr)
	}
}
