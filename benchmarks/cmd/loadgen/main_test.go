package main

import (
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/report"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

func startServer(t *testing.T, impl string) string {
	t.Helper()
	s, err := servers.Start(impl, "127.0.0.1:0", servers.Config{Size: wire.DefaultSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.Addr()
}

func opts(mode, impl, addr string) options {
	return options{mode: mode, impl: impl, addr: addr, conns: 8, pipeline: 4, size: wire.DefaultSize,
		duration: 200 * time.Millisecond, warmup: 50 * time.Millisecond, rounds: 3, timeout: 10 * time.Second}
}

func TestEcho(t *testing.T) {
	for _, impl := range []string{"simplerpc", "rawgnet"} {
		o := opts("echo", impl, startServer(t, impl))
		o.sources = []string{"127.0.0.1", "127.0.0.2"}
		res, err := runFramed(o)
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		if res.Frames == 0 || res.Errors != 0 || res.Latency.P50 <= 0 || res.FramesPerS <= 0 {
			t.Fatalf("%s: %+v", impl, res)
		}
	}
}

func TestBroadcast(t *testing.T) {
	for _, impl := range []string{"simplerpc", "netcareful"} {
		o := opts("broadcast", impl, startServer(t, impl))
		res, err := runFramed(o)
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		if res.Rounds != 3 || res.Incomplete != 0 || res.Frames != 3*int64(o.conns) || res.RoundP50 <= 0 {
			t.Fatalf("%s: %+v", impl, res)
		}
	}
}

func TestCall(t *testing.T) {
	for impl, server := range map[string]string{"simplerpc": "simplerpc", "simplerpc-async": "simplerpc", "netrpc": "netrpc"} {
		o := opts("call", impl, startServer(t, server))
		o.conns, o.pipeline = 2, 2
		res, err := runCall(o)
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		if res.Frames == 0 || res.Errors != 0 {
			t.Fatalf("%s: %+v", impl, res)
		}
	}
}

func TestEchoOverTransports(t *testing.T) {
	for _, impl := range []string{"simplerpc-tls", "nettls", "simplerpc-ws", "netws"} {
		o := opts("echo", impl, startServer(t, impl))
		o.transport = servers.TransportOf(impl)
		o.sources = []string{"127.0.0.1", "127.0.0.2"}
		var res *report.LoadResult
		var err error
		if o.transport == servers.TLS {
			res, err = runStream(o)
		} else {
			res, err = runFramed(o)
		}
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		if res.Frames == 0 || res.Errors != 0 || res.Latency.P50 <= 0 || res.FramesPerS <= 0 {
			t.Fatalf("%s: %+v", impl, res)
		}
	}
}

func TestHandshake(t *testing.T) {
	for _, impl := range []string{"simplerpc-tls", "nettls"} {
		checkCycles(t, "handshake", impl)
	}
	o := opts("handshake", "simplerpc", startServer(t, "simplerpc"))
	if _, err := runHandshake(o); err == nil {
		t.Fatal("handshakes against a plain TCP server")
	}
}

// TestConnect: -mode connect runs the handshake's cycle (a connection, its
// -2 frame, one echo, a close) over plain TCP and over TLS.
func TestConnect(t *testing.T) {
	for _, impl := range []string{"simplerpc", "rawgnet", "simplerpc-tls"} {
		checkCycles(t, "connect", impl)
	}
}

// checkCycles runs two workers of mode's cycles against a server of impl,
// over its own transport, and fails unless some completed, without error.
func checkCycles(t *testing.T, mode, impl string) {
	t.Helper()
	o := opts(mode, impl, startServer(t, impl))
	o.transport = servers.TransportOf(impl)
	o.conns = 2
	res, err := runHandshake(o)
	if err != nil {
		t.Fatalf("%s: %v", impl, err)
	}
	if res.Frames == 0 || res.Errors != 0 || res.Latency.P50 <= 0 {
		t.Fatalf("%s: %+v", impl, res)
	}
}
