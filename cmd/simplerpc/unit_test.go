package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
)

func TestPayloadSize(t *testing.T) {
	t.Parallel()
	for _, target := range []int{minPayload, minPayload + 1, 100, 256, 1023} {
		p := newPayload(target)
		for _, stamp := range []time.Duration{0, 7, 123456789, 1<<63 - 1} {
			for _, tc := range []struct {
				op    codec.Opcode
				round int64
			}{{opEcho, 0}, {opBroadcast, 1}, {opBroadcast, 999999999}} {
				obj := p.build(nil, tc.op, tc.round, stamp)
				frame, err := codec.AppendRaw(nil, target, tc.op, obj)
				if err != nil {
					t.Fatalf("target %d: %s: %v", target, obj, err)
				}
				if got := len(frame) - len(bytes.TrimRight(frame, " ")); got != 0 {
					t.Errorf("target %d round %d stamp %d: %d bytes of padding, want the frame full: %s",
						target, tc.round, stamp, got, obj)
				}
				if !json.Valid(obj) {
					t.Errorf("%s is not JSON", obj)
				}
				round, at, ok := stampOf(obj)
				if !ok || round != tc.round || at != stamp {
					t.Errorf("stampOf(%s) = %d, %d, %v; want %d, %d", obj, round, at, ok, tc.round, stamp)
				}
			}
		}
	}
}

func TestStampOfRejects(t *testing.T) {
	t.Parallel()
	for _, obj := range []string{``, `{}`, `{"t":}`, `{"t":"1"}`, `{"r":1}`, `{"r":1,"x":2}`, `{"t":-1}`, `{"t":1.5}`} {
		if _, _, ok := stampOf([]byte(obj)); ok {
			t.Errorf("stampOf(%s) accepted it", obj)
		}
	}
	// Any well-formed form is read: the original's spaced echo, another
	// key order, other fields.
	for obj, want := range map[string][2]int64{
		`{"p": "xxxx", "t": 123456789}`: {0, 123456789},
		`{"x":1,"t":2}`:                 {0, 2},
		`{"t": 7, "r": 3, "p": ""}`:     {3, 7},
	} {
		if round, at, ok := stampOf([]byte(obj)); !ok || round != want[0] || int64(at) != want[1] {
			t.Errorf("stampOf(%s) = %d, %d, %v; want %d, %d", obj, round, at, ok, want[0], want[1])
		}
	}
}

func TestSourceAddrs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		conns  int
		forced int
		want   string
		err    string
	}{
		{"127.0.0.1:1", 100, 0, "", ""},
		{"127.0.0.1:1", 20000, 0, "", ""},
		{"127.0.0.1:1", 20001, 0, "127.0.0.2,127.0.0.3", ""},
		{"localhost:1", 50000, 0, "127.0.0.2,127.0.0.3,127.0.0.4", ""},
		{"tcp://127.9.9.9:1", 10, 2, "127.0.0.2,127.0.0.3", ""},
		{"10.0.0.1:1", 50000, 0, "", ""},
		{"[::1]:1", 50000, 0, "", ""},
		{"unix:///tmp/s", 50000, 0, "", ""},
		{"10.0.0.1:1", 10, 2, "", "needs an IPv4 loopback target"},
		{"[::1]:1", 10, 2, "", "needs an IPv4 loopback target"},
	} {
		got, err := sourceAddrs(tc.addr, tc.conns, tc.forced)
		if tc.err != "" {
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &ue) {
				t.Errorf("sourceAddrs(%q, %d, %d): err %v, want a usage error with %q", tc.addr, tc.conns, tc.forced, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("sourceAddrs(%q, %d, %d) = %q, %v; want %q", tc.addr, tc.conns, tc.forced, got, err, tc.want)
		}
	}
	// The range carries into the higher bytes.
	got, err := sourceAddrs("127.0.0.1:1", 0, 300)
	if err != nil || got[253] != "127.0.0.255" || got[254] != "127.0.1.0" {
		t.Errorf("300 sources: %v, %v", got[250:], err)
	}
}

func TestCompactObject(t *testing.T) {
	t.Parallel()
	got, err := compactObject([]byte(" {\"a\": [1, 2.50, null], \"b\": \"\\u00e9<\"}\n"))
	if err != nil || string(got) != `{"a":[1,2.50,null],"b":"\u00e9<"}` {
		t.Errorf("compactObject = %s, %v", got, err)
	}
	for _, bad := range []string{"", "null", "1", "true", `"s"`, "[]", "{", `{"a":1} x`, "{\"a\":\"\xff\"}"} {
		if _, err := compactObject([]byte(bad)); err == nil {
			t.Errorf("compactObject(%q) accepted it", bad)
		}
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		us   float64
		want string
	}{
		{0, "-"}, {0.25, "250ns"}, {1, "1.00µs"}, {12.34, "12.3µs"}, {999, "999µs"},
		{1000, "1.00ms"}, {45678, "45.7ms"}, {2.5e6, "2.50s"},
	} {
		if got := usFormat(tc.us); got != tc.want {
			t.Errorf("usFormat(%v) = %q, want %q", tc.us, got, tc.want)
		}
	}
	for _, tc := range []struct {
		v    float64
		want string
	}{{999, "999"}, {12345, "12.3k"}, {2e6, "2M"}, {1.234e6, "1.23M"}} {
		if got := siFormat(tc.v); got != tc.want {
			t.Errorf("siFormat(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestShardedHist(t *testing.T) {
	t.Parallel()
	h := newShardedHist(4)
	for i := range 1000 {
		h.record(uint64(i), time.Duration(i+1)*time.Microsecond)
	}
	h.record(1, -time.Second) // clamped, not lost
	h.record(2, time.Hour)
	m := h.merged()
	if m.TotalCount() != 1002 {
		t.Fatalf("%d values, want 1002", m.TotalCount())
	}
	h.close()
	if h.record(3, time.Millisecond) || h.merged().TotalCount() != 1002 {
		t.Fatal("recorded after close")
	}
	s := summarize(m)
	if s.P50 < 495 || s.P50 > 505 || s.Min > 0.01 || s.Max < 59e6 {
		t.Errorf("summary %+v", s)
	}
}

// TestRunExitCodes calls run in-process for the cases that need no peer.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--help"}, exitOK},
		{[]string{"nope"}, exitUsage},
		{[]string{"call", "0", "[]"}, exitUsage},
		{[]string{"call", "--addr", "unix:///nonexistent/simplerpc.sock", "0"}, exitFailure},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errb)
		if code := report(&errb, err); code != tc.code {
			t.Errorf("run %q: exit %d, want %d (err %v)", tc.args, code, tc.code, err)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr      string
		listening bool
		err       string // "" if accepted
	}{
		{"127.0.0.1:30000", false, ""},
		{"tcp://127.0.0.1:1", false, ""},
		{"tcp4://localhost:65535", false, ""},
		{"tcp6://[::1]:80", false, ""},
		{"[::1]:80", false, ""},
		{":30000", true, ""},
		{"127.0.0.1:0", true, ""},
		{"unix:///tmp/s.sock", false, ""},
		{"localhost", false, `--addr "localhost" is not of the form host:port, tcp://host:port, tls://host:port, ws://host:port/path, wss://host:port/path or unix:///path`},
		{"[::1]", false, "is not of the form"},
		{"tcp://", false, "is not of the form"},
		{":99999", false, `--addr ":99999": the port must be a number from 1 to 65535`},
		{":99999", true, "the port must be a number from 0 to 65535"},
		{"127.0.0.1:0", false, "from 1 to 65535"},
		{"127.0.0.1:-1", true, "from 0 to 65535"},
		{"host:http", false, "the port must be a number"},
		{"http://x", false, `--addr "http://x": unsupported scheme "http" (want host:port, tcp://host:port, tls://host:port, ws://host:port/path, wss://host:port/path or unix:///path)`},
		{"ws://127.0.0.1:0/rpc", true, ""},
		{"wss://example.com/rpc", false, ""},
		{"ws://[::1]:8080", false, ""},
		{"ws://127.0.0.1/rpc", true, "has no port"},
		{"ws://127.0.0.1:0/rpc", false, "from 1 to 65535"},
		{"wss://:8080/rpc", false, "is not of the form wss://host:port/path"},
		{"udp://127.0.0.1:1", true, `unsupported scheme "udp"`},
		{"unix://", false, `--addr "unix://" has no socket path`},
	} {
		err := checkAddr(tc.addr, tc.listening)
		var ue usageError
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("checkAddr(%q, %v): %v, want it accepted", tc.addr, tc.listening, err)
		case tc.err != "" && (err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("checkAddr(%q, %v): %v, want a usage error with %q", tc.addr, tc.listening, err, tc.err)
		}
	}
}
