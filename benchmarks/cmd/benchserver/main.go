// Command benchserver runs one comparison server in its own process, so
// that the runner can pin it to a core and read its CPU time and memory
// from /proc.
//
//	benchserver -impl simplerpc -addr 127.0.0.1:0 -size 256
//	benchserver -impl simplerpc -metrics 1s   # with package metrics registered, scraped every second
//
// It prints "listening ADDR" on stdout once it accepts connections, and
// serves until SIGTERM or SIGINT (or until stdin closes, with -stdin). On
// SIGUSR1 it collects garbage and returns the free memory to the system
// (debug.FreeOSMemory), then prints "freed" on stdout: the runner reads the
// RSS of the idle TLS and WebSocket connections both before and after.
//
// Every server runs with GOMAXPROCS at least its event loops plus one
// (-procs), whatever its kind: pinned to one core, Go would give it one
// P, and an event loop would hold it (OPERATIONS.md, "CPUs: a P beside
// the event loops"). The servers without event loops are unaffected by
// the spare P (measured: net + crypto/tls within the noise).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/simplerpc/simplerpc/benchmarks/internal/rlimit"
	"github.com/simplerpc/simplerpc/benchmarks/internal/servers"
	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

func main() {
	impl := flag.String("impl", "simplerpc", fmt.Sprintf("server implementation: one of %v", servers.Impls))
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	size := flag.Int("size", wire.DefaultSize, "frame size in bytes")
	loops := flag.Int("loops", 1, "event loops (gnet servers)")
	procs := flag.Int("procs", 0, "GOMAXPROCS at least this (0: the event loops plus one, as OPERATIONS.md advises; -1: Go's default)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	memprofile := flag.String("memprofile", "", "write a heap profile to this file at exit")
	stdin := flag.Bool("stdin", false, "also stop when stdin closes")
	scrapeEvery := flag.Duration("metrics", 0, "simplerpc only: register package metrics, serve them over HTTP and scrape them this often from this process (0: no metrics)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("benchserver: ")
	rlimit.RaiseNoFile()
	if want := *procs; want >= 0 {
		if want == 0 {
			want = *loops + 1
		}
		if runtime.GOMAXPROCS(0) < want {
			runtime.GOMAXPROCS(want)
		}
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 1 // every allocation, for exact per-connection figures
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	cfg := servers.Config{Size: *size, Loops: *loops}
	var sc *scraped
	if *scrapeEvery > 0 {
		if *impl != "simplerpc" {
			log.Fatalf("-metrics needs -impl simplerpc")
		}
		sc = newScraped(*scrapeEvery)
		cfg.Instrument = sc.instrument
	}
	srv, err := servers.Start(*impl, *addr, cfg)
	if err != nil {
		log.Fatal(err)
	}
	if sc != nil {
		if err := sc.start(); err != nil {
			log.Fatal(err)
		}
		defer func() {
			_ = sc.close()
			log.Printf("%d scrapes of %s, the last %d bytes", sc.scrapes, sc.url, sc.lastLen)
		}()
	}
	fmt.Printf("listening %s\n", srv.Addr())

	free := make(chan os.Signal, 1)
	signal.Notify(free, syscall.SIGUSR1)
	go func() {
		for range free {
			debug.FreeOSMemory()
			fmt.Println("freed")
		}
	}()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if *stdin {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			stop <- syscall.SIGTERM
		}()
	}
	<-stop
	if *memprofile != "" {
		runtime.GC()
		if f, err := os.Create(*memprofile); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
	}
	_ = srv.Close()
}
