package main

import (
	"strings"
	"testing"
	"time"
)

// TestServeMetricsAuthFailure: a wrong --auth-token moves the
// authentication counters of --metrics-addr (refused for auth, an
// Unauthorized failure sent), not "other"; the refusal is counted before
// its failure is sent, so the client's exit is the point to scrape at.
func TestServeMetricsAuthFailure(t *testing.T) {
	t.Parallel()
	p, addr := startServe(t, "--auth-token", "s3cret", "--metrics-addr", "127.0.0.1:0")
	maddr := p.waitLine(t, reLine(`msg="metrics listening" addr=(\S+)`), 10*time.Second)[1]
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "--auth-token", "wrong", "--timeout", "10s", "0", `{"n": 1}`)
	if r.code == 0 {
		t.Fatalf("a wrong token: exit 0, stdout %q", r.stdout)
	}
	body := httpGet(t, "http://"+maddr+"/metrics", 10*time.Second)
	for _, want := range []string{
		`simplerpc_connections_refused_total{reason="auth"} 1`,
		`simplerpc_failures_sent_total{reason="Unauthorized"} 1`,
		`simplerpc_failures_sent_total{reason="other"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(body, "simplerpc_connections_refused_total", "simplerpc_failures_sent_total"))
		}
	}
}

// grepLines returns the lines of text that start with one of prefixes.
func grepLines(text string, prefixes ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
