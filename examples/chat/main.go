// Command chat is a chat you can open in a browser: one simplerpc server
// whose rooms browsers join over WebSocket (a page that uses the
// JavaScript client in clients/js) and Go clients join over TCP, with one
// set of net ids, so a message crosses from either kind to the other.
//
//	go run ./examples/chat                                   # then open the printed URL
//	go run ./examples/chat -role client -name bob -room lobby
//
// The server role listens three times: the page on -http (net/http), the
// WebSocket endpoint on -ws (path /chat) and TCP on -tcp, the last two on
// the same engine.Server. The page and the WebSocket endpoint are on two
// ports because the engine owns its listeners' sockets on its event loop
// (it reads the HTTP upgrade itself, with no goroutine per connection),
// while net/http runs a goroutine per connection on its own listener: one
// port would need one of them to hand accepted connections to the other,
// which neither does (see README.md).
//
// The client role reads lines from standard input: a line is a message to
// the current room; /join ROOM, /leave ROOM, /members, /online and /quit
// are commands. It prints what the rooms say.
//
// Both roles run until Ctrl-C (SIGINT) or SIGTERM, a clean stop that exits
// 0, as does the client at the end of its input. A real failure exits 1
// (the name taken, the server gone); bad flags exit 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM ends ctx: a clean stop, exit 0. A second
	// one kills the process as usual.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// errUsage marks bad flags; the flag package has already said why.
var errUsage = errors.New("usage")

// exitCode reports err on stderr and returns the exit status: 0 for none,
// 2 for bad flags, 1 for a real failure.
func exitCode(stderr io.Writer, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintln(stderr, "chat:", err)
	return 1
}

// run runs the example until ctx ends (a signal in main), which is a clean
// stop: it returns nil then, and an error only for a real failure.
func run(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(errOut)
	role := fs.String("role", "server", "server, or client (a Go client over TCP)")
	httpAddr := fs.String("http", "127.0.0.1:8080", "server: the page's address (net/http)")
	wsAddr := fs.String("ws", "127.0.0.1:8081", "server: the WebSocket endpoint's address (path "+wsPath+")")
	tcpAddr := fs.String("tcp", "127.0.0.1:30000", "server: the address for Go clients; client: the server's")
	name := fs.String("name", "", "client: your name (required)")
	room := fs.String("room", "lobby", "client: the room to join")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(errOut, "unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	p := &printer{w: out}
	switch *role {
	case "server":
		return serve(ctx, p, *httpAddr, *wsAddr, *tcpAddr)
	case "client":
		if *name == "" {
			fmt.Fprintln(errOut, "-role client needs -name")
			return errUsage
		}
		return talk(ctx, p, in, *tcpAddr, *name, *room)
	}
	fmt.Fprintf(errOut, "unknown -role %q (want server or client)\n", *role)
	return errUsage
}

// printer serialises output from the callbacks and the main goroutine.
type printer struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}
