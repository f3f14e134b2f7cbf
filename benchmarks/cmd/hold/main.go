// Command hold opens idle connections to a comparison server and keeps
// them open: the idle scenario runs several of these, each from its own
// source address and below the process's file-descriptor limit.
//
//	hold -addr 127.0.0.1:PORT -n 5000 -source 127.0.0.2
//	hold -tls ...   # TLS connections (full handshake each)
//	hold -ws ...    # WebSocket connections (upgraded at /rpc)
//
// It reads each connection's -2 frame (so the server has fully opened
// it, and over TLS finished the handshake), prints "ready N" on stdout, then holds the connections until stdin
// closes or it gets SIGTERM or SIGINT. Closing sends resets (SO_LINGER 0).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/simplerpc/simplerpc/benchmarks/internal/dial"
	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:30000", "server address")
	n := flag.Int("n", 1000, "connections")
	source := flag.String("source", "", "source IP address (default: the system's choice)")
	size := flag.Int("size", wire.DefaultSize, "frame size the server announces")
	timeout := flag.Duration("timeout", 20*time.Second, "bound on each connection attempt")
	overTLS := flag.Bool("tls", false, "TLS connections (the server's certificate is not verified)")
	overWS := flag.Bool("ws", false, "WebSocket connections, upgraded at "+wire.WSPath)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("hold: ")
	if limit := rlimit.RaiseNoFile(); uint64(*n)+32 > limit {
		log.Fatalf("-n %d does not fit the file-descriptor limit %d: run more processes", *n, limit)
	}
	var sources []string
	if *source != "" {
		sources = []string{*source}
	}
	var via dial.Via
	if *overTLS {
		via.TLS = servers.ClientTLS()
	}
	if *overWS {
		via.WSPath = wire.WSPath
	}
	conns := make([]net.Conn, *n)
	err := dial.ManyVia(*addr, *n, 32, sources, wire.SizeFrame(*size), *timeout, via, func(i int, nc net.Conn) error {
		conns[i] = nc
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ready %d\n", *n)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	<-stop
	for _, c := range conns {
		_ = c.Close()
	}
}
