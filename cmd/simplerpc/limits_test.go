package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServeLimitErrors checks that a bad limit value is a usage error
// that names its flag, before anything listens.
func TestServeLimitErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--idle-timeout", "-1s"}, "--idle-timeout -1s must not be negative"},
		{[]string{"--idle-timeout", "soon"}, `invalid argument "soon" for "--idle-timeout"`},
		{[]string{"--keepalive", "-5s"}, "--keepalive -5s must not be negative"},
		{[]string{"--write-deadline", "-1ms"}, "--write-deadline -1ms must not be negative"},
		{[]string{"--frame-deadline", "-1m"}, "--frame-deadline -1m0s must not be negative"},
		{[]string{"--rate-limit", "-3"}, "--rate-limit -3 must be a finite number"},
		{[]string{"--rate-limit", "NaN"}, "--rate-limit NaN must be a finite number"},
		{[]string{"--rate-limit", "fast"}, `invalid argument "fast" for "--rate-limit"`},
		{[]string{"--rate-limit", "10", "--rate-burst", "-1"}, "--rate-burst -1 must not be negative"},
		{[]string{"--rate-limit", "10", "--rate-strikes", "0"}, "--rate-strikes 0 must be at least 1"},
		{[]string{"--rate-burst", "5"}, "--rate-burst needs --rate-limit"},
		{[]string{"--max-outbound", "100"}, "--max-outbound 100 is less than the largest frame, --max-size 256"},
		{[]string{"--max-outbound", "lots"}, `invalid argument "lots" for "--max-outbound"`},
		{[]string{"--max-inbound", "100"}, "--max-inbound 100 is less than the largest frame, --max-size 256"},
		{[]string{"--max-malformed", "-1"}, "--max-malformed -1 must lie within 0..4095"},
		{[]string{"--max-malformed", "40000"}, "--max-malformed 40000 must lie within 0..4095"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runBin(t, 20*time.Second, append([]string{"serve", "--addr", "127.0.0.1:0", "--size", "256"}, tc.args...)...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
			if strings.Contains(r.stderr, "listening") {
				t.Errorf("serve listened before rejecting the flag:\n%s", r.stderr)
			}
		})
	}
}

// TestServeHelpDefaults checks that serve --help prints the engine's
// defaults for the limits.
func TestServeHelpDefaults(t *testing.T) {
	t.Parallel()
	r := runBin(t, 20*time.Second, "serve", "--help")
	r.wantCode(t, 0)
	for _, want := range []string{
		"--write-deadline duration", "(default 10s)",
		"--frame-deadline duration", "(default 30s)",
		"--max-malformed int", "(default 16)",
		"--rate-strikes int", "(default 10)",
		"--max-outbound int", "(default 4194304)",
		"--max-inbound int", "(default 16777216)",
		"--idle-timeout duration", "--keepalive duration", "--rate-limit float", "--rate-burst int",
		"clamped to it, with a warning",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, r.stdout)
		}
	}
}

// rawConn dials addr over TCP and reads the server's -2 frame of size
// bytes.
func rawConn(t *testing.T, addr string, size int) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, size)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading the -2 frame: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// waitClosed reads c, discarding what comes, until the server closes it,
// within timeout.
func waitClosed(t *testing.T, c net.Conn, timeout time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection within %v", timeout)
	}
}

// TestServeLimits checks one behaviour of each limit family: the
// connection is closed, and the log gives the engine's reason.
func TestServeLimits(t *testing.T) {
	t.Parallel()
	const size = 256
	for _, tc := range []struct {
		name   string
		args   []string
		act    func(t *testing.T, c net.Conn)
		reason string
	}{
		{"idle", []string{"--idle-timeout", "200ms"}, func(t *testing.T, c net.Conn) {}, "engine: idle timeout"},
		{"frame deadline", []string{"--frame-deadline", "200ms"}, func(t *testing.T, c net.Conn) {
			if _, err := c.Write([]byte(`0{"half":`)); err != nil {
				t.Fatal(err)
			}
		}, "engine: frame deadline"},
		{"malformed", []string{"--max-malformed", "2"}, func(t *testing.T, c net.Conn) {
			if _, err := c.Write(append(padded(size, `0{bad`), padded(size, `0{worse`)...)); err != nil {
				t.Fatal(err)
			}
		}, "engine: protocol error"},
		{"rate", []string{"--rate-limit", "0.001", "--rate-burst", "1", "--rate-strikes", "2"}, func(t *testing.T, c net.Conn) {
			var b []byte
			for range 4 {
				b = append(b, padded(size, `0{}`)...)
			}
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
		}, "engine: rate limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, addr := startServe(t, tc.args...)
			c := rawConn(t, addr, size)
			tc.act(t, c)
			waitClosed(t, c, 20*time.Second)
			p.waitLine(t, reLine(`msg=disconnect .*reason="`+tc.reason), 10*time.Second)
		})
	}
}

// TestServeWriteDeadline checks that --write-deadline closes a peer that
// sends echo requests and never reads the echoes.
func TestServeWriteDeadline(t *testing.T) {
	t.Parallel()
	const size = 256
	// The outbound cap is far above what is sent, so that the deadline,
	// not the slow-consumer check, closes the connection.
	p, addr := startServe(t, "--write-deadline", "200ms", "--max-outbound", "67108864")
	c := rawConn(t, addr, size)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	// More than the kernel buffers on both sides hold, so that output
	// waits in the server.
	frame := padded(size, `0{}`)
	chunk := bytes.Repeat(frame, 1024)
	go func() {
		for range 32 { // 8 MiB
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	p.waitLine(t, reLine(`msg=disconnect .*reason="engine: write deadline`), 30*time.Second)
}

func TestClampMaxConns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		soft uint64
		want int
		warn bool
	}{
		{0, 1024, 0, false},
		{100, 1024, 100, false},
		{512, 1024, 512, false},
		{513, 1024, 512, true},
		{100000, 0, 100000, false},
		{100, 300, 1, true},
		{1 << 30, 1 << 62, 1 << 30, false}, // an unlimited RLIMIT_NOFILE
	} {
		var log bytes.Buffer
		got := clampMaxConns(slog.New(slog.NewTextHandler(&log, nil)), tc.n, tc.soft)
		if got != tc.want || (log.Len() > 0) != tc.warn {
			t.Errorf("clampMaxConns(%d, %d) = %d, log %q; want %d, warning %v", tc.n, tc.soft, got, log.String(), tc.want, tc.warn)
		}
	}
}

// TestServeMaxConnsClamped checks that a --max-conns above the
// descriptor limit is clamped with a warning, and serve still runs.
func TestServeMaxConnsClamped(t *testing.T) {
	t.Parallel()
	if soft, _ := fdLimit(); soft == 0 || soft > 1<<30 {
		t.Skipf("RLIMIT_NOFILE %d: nothing to clamp to", soft)
	}
	p, addr := startServe(t, "--max-conns", "2000000000")
	// The warning comes before the "listening" line startServe waited for.
	if want := `level=WARN msg="--max-conns is above the file-descriptor limit; clamped" max_conns=2000000000`; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.stderr.String())
	}
	runBin(t, 20*time.Second, "call", "--addr", addr, "0", `{}`).wantCode(t, 0)
}
