package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSignals checks that serve stops cleanly, with status 0, on
// SIGINT and on SIGTERM, and that --log-format json logs JSON lines.
func TestServeSignals(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p := startBin(t, "serve", "--addr", "127.0.0.1:0", "--log-format", "json")
			m := p.waitLine(t, reLine(`"msg":"listening","addr":"([^"]+)"`), 20*time.Second)
			runBin(t, 20*time.Second, "call", "--addr", m[1], "0", `{}`).wantCode(t, 0)
			p.waitLine(t, reLine(`"msg":"disconnect"`), 10*time.Second)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 15*time.Second); code != 0 {
				t.Fatalf("serve exited %d after %v\nstderr:\n%s", code, sig, p.stderr.String())
			}
			var msgs []string
			for _, l := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
				var rec struct {
					Level, Msg string
				}
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("log line %q is not JSON: %v", l, err)
				}
				if strings.HasPrefix(rec.Msg, "GOMAXPROCS raised") {
					continue // on a machine with one CPU (service's TestSpareP)
				}
				msgs = append(msgs, rec.Msg)
			}
			if got, want := strings.Join(msgs, ","), "listening,connect,disconnect,shutting down,stopped"; got != want {
				t.Errorf("log messages %s, want %s", got, want)
			}
			if _, err := net.Dial("tcp", m[1]); err == nil {
				t.Errorf("%s still accepts connections", m[1])
			}
		})
	}
}

func TestServeErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"log format", []string{"--log-format", "xml"}, 2, `--log-format "xml": want text or json`},
		{"size", []string{"--size", "10"}, 2, "--size 10 is below the smallest message size, 64 bytes"},
		{"size past a given max-size", []string{"--size", "5000", "--max-size", "4096"}, 2, "--size 5000 is larger than --max-size 4096"},
		{"max-size too small", []string{"--max-size", "10"}, 2, "--max-size 10 must lie within 64..16777216 bytes"},
		{"max-size too large", []string{"--max-size", "20000000"}, 2, "--max-size 20000000 must lie within"},
		{"loops", []string{"--loops", "0"}, 2, "must be positive"},
		{"argument", []string{"now"}, 2, `unknown command "now" for "simplerpc serve"`},
		{"address in use", []string{"--addr", ln.Addr().String()}, 1, "address already in use"},
		{"bad network", []string{"--addr", "udp://127.0.0.1:0"}, 2, `--addr "udp://127.0.0.1:0": unsupported scheme "udp"`},
		{"addr without port", []string{"--addr", "localhost"}, 2, `--addr "localhost" is not of the form`},
		{"addr port out of range", []string{"--addr", ":99999"}, 2, `the port must be a number from 0 to 65535`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, 20*time.Second, append([]string{"serve"}, tc.args...)...)
			r.wantCode(t, tc.code)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{"help", []string{"--help"}, 0, "Available Commands:", ""},
		{"no arguments", nil, 0, "Available Commands:", ""},
		{"subcommand help", []string{"bench", "--help"}, 0, "--pipeline int", ""},
		{"help subcommand", []string{"help", "call"}, 0, "OPCODE [JSON]", ""},
		{"unknown subcommand", []string{"frobnicate"}, 2, "", `unknown command "frobnicate" for "simplerpc"`},
		{"unknown flag", []string{"--frobnicate"}, 2, "", "unknown flag: --frobnicate"},
		{"unknown subcommand flag", []string{"listen", "--frobnicate"}, 2, "", "Run 'simplerpc listen --help' for usage."},
		{"bad flag value", []string{"bench", "--conns", "many"}, 2, "", `invalid argument "many" for "--conns"`},
		{"completion", []string{"completion", "bash"}, 0, "__start_simplerpc", ""},
		{"version", []string{"--version"}, 0, "simplerpc ", ""},
		{"flag completion", []string{"__complete", "serve", "--log-format", ""}, 0, "text\njson\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, 20*time.Second, tc.args...)
			r.wantCode(t, tc.code)
			if !strings.Contains(r.stdout, tc.out) {
				t.Errorf("stdout %q does not contain %q", r.stdout, tc.out)
			}
			if !strings.Contains(r.stderr, tc.err) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.err)
			}
		})
	}
}

// TestServeMaxSize checks that --max-size lets serve announce frames past
// 64 KiB and that call and listen reach such a server.
func TestServeMaxSize(t *testing.T) {
	t.Parallel()
	const size = 100000
	// Later flags win: startServe's --size 256 is replaced.
	_, addr := startServe(t, "--size", fmt.Sprint(size), "--max-size", "5000000", "--quiet")
	big := `{"p":"` + strings.Repeat("x", 70000) + `"}`
	r := runBin(t, 20*time.Second, "call", "--addr", addr, "0", big)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":` + big + "}\n"; r.stdout != want {
		t.Errorf("stdout has %d bytes, want the %d-byte echo", len(r.stdout), len(want))
	}
	r = runBin(t, 20*time.Second, "listen", "--addr", addr, "--all", "--count", "1")
	r.wantCode(t, 0)
	if want := fmt.Sprintf(`"data":{"message_size":%d}`, size); !strings.Contains(r.stdout, want) {
		t.Errorf("listen printed %q, want the -2 frame with %s", r.stdout, want)
	}
}
