// Command messenger is the original Python simplerpc README's messenger
// server and client, in Go.
//
// With no flags it starts both in one process: on connect the server sends
// opcode 1 three ways (to all, by net id, and through the connection), the
// client answers each with opcode 0, the server prints what it gets, and a
// last RPC to opcode 2 without its argument shows an ArgumentMissing
// failure travelling back to the client's failure callback. It exits 0.
//
//	go run ./examples/messenger
//	go run ./examples/messenger -role server -addr 127.0.0.1:30000 -size 256
//	go run ./examples/messenger -role client -addr 127.0.0.1:30000
//
// The server and client roles run until Ctrl-C (SIGINT) or SIGTERM, a clean
// stop that exits 0 in every role. A real failure exits 1: a client whose
// server goes away, say. Bad flags exit 2.
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
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

func main() {
	// The first SIGINT or SIGTERM ends ctx: a clean stop, exit 0. A second
	// one kills the process as usual.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
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
	fmt.Fprintln(stderr, "messenger:", err)
	return 1
}

// someData is the payload of the README's RPCs.
type someData struct {
	SomeData any `json:"some_data"`
}

// greeting is opcode 2's argument, required like the README's 'argname'.
type greeting struct {
	Argname string `json:"argname" simplerpc:"required"`
}

// run runs the example until ctx ends (a signal in main), which is a clean
// stop: it returns nil then, and an error only for a real failure.
func run(ctx context.Context, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("messenger", flag.ContinueOnError)
	fs.SetOutput(errOut)
	role := fs.String("role", "both", "server, client, or both in one process")
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on or connect to")
	size := fs.Int("size", 256, "message size in bytes (server)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	p := &printer{w: out}

	switch *role {
	case "server":
		return serve(ctx, p, *addr, *size)
	case "client":
		cl, err := dialClient(ctx, p, *addr, 0, make(chan struct{}))
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while connecting
			}
			return err
		}
		// Run returns ctx's error when ctx ends, and the reason the
		// connection was lost otherwise.
		if err := cl.Run(ctx); ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
			return err
		}
		return nil
	case "both":
		return both(ctx, p, *addr, *size)
	}
	fmt.Fprintf(errOut, "unknown -role %q (want server, client or both)\n", *role)
	return errUsage
}

// serve runs the server role until ctx ends.
func serve(ctx context.Context, p *printer, addr string, size int) error {
	srv, err := newServer(p, size)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx, addr); err != nil {
		return err
	}
	p.printf("server: listening on %s (message size %d)\n", srv.Addr(), size)
	select {
	case <-ctx.Done():
	case <-srv.Done():
		if ctx.Err() == nil {
			return srv.Err() // the server stopped on its own
		}
	}
	// The engine shuts down on its own when ctx ends; Shutdown waits for it.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// newServer builds the README's messenger server.
func newServer(p *printer, size int) (*engine.Server, error) {
	msg := handler.NewRouter()
	var srv *engine.Server
	msg.On(0, func(c handler.Conn, data []byte) error {
		p.printf("server: got RPC 0 from net id %d with: %s\n", c.ID(), data)
		return nil
	})
	handler.Handle(msg, 2, func(c handler.Conn, g greeting) error {
		p.printf("server: got RPC 2 with argname=%q\n", g.Argname)
		return nil
	})
	handleConnect := func(c handler.Conn) {
		p.printf("server: net id %d connected from %s\n", c.ID(), c.RemoteAddr())
		// Send RPC to the connection three times, as the original does.
		_ = srv.SendAll(1, someData{"this is sent to every connection"})
		_ = srv.Send(c.ID(), 1, someData{"this is sent to whoever just connected"})
		_ = c.Send(1, someData{"this is sent to whoever just connected"})
	}
	handleDisconnect := func(c handler.Conn, reason error) {
		p.printf("server: net id %d disconnected (%v)\n", c.ID(), reason)
	}
	var err error
	srv, err = engine.NewServer(msg,
		engine.WithMessageSize(size),
		engine.WithOnConnect(handleConnect),
		engine.WithOnDisconnect(handleDisconnect),
	)
	return srv, err
}

// dialClient builds the README's messenger client. After want frames on
// opcode 1 (0: never) it sends opcode 2 without its argument and closes
// done when the failure comes back.
func dialClient(ctx context.Context, p *printer, addr string, want int, done chan struct{}) (*engine.Client, error) {
	msg := handler.NewRouter()
	var got int
	var once sync.Once
	msg.On(1, func(c handler.Conn, data []byte) error {
		p.printf("client: got RPC 1 with: %s\n", data)
		got++
		if err := c.Send(0, someData{123}); err != nil {
			return err
		}
		if got == want {
			return c.Send(2, map[string]any{"wrong": "argument"})
		}
		return nil
	})
	handler.Handle(msg, codec.OpFailure, func(c handler.Conn, f *handler.Error) error {
		p.printf("client: failure %s: %s\n", f.Reason, f.Message)
		once.Do(func() { close(done) })
		return nil
	})
	return engine.Dial(ctx, addr, msg,
		engine.WithOnConnect(func(c handler.Conn) { p.printf("client: connected, message size learned from the server\n") }),
		engine.WithOnDisconnect(func(c handler.Conn, reason error) { p.printf("client: disconnected (%v)\n", reason) }),
	)
}

func both(ctx context.Context, p *printer, addr string, size int) error {
	srv, err := newServer(p, size)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx, addr); err != nil {
		return err
	}
	p.printf("server: listening on %s (message size %d)\n", srv.Addr(), size)
	done := make(chan struct{})
	cl, err := dialClient(ctx, p, srv.Addr().String(), 3, done)
	if err != nil {
		_ = srv.Close()
		if ctx.Err() != nil {
			return nil // stopped while connecting
		}
		return err
	}
	var runErr error
	select {
	case <-done:
	case <-ctx.Done(): // stopped: a clean exit
	case <-time.After(10 * time.Second):
		runErr = errors.New("timed out waiting for the exchange")
	}
	_ = cl.Close()
	<-cl.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// printer serialises output from the server's and the client's callbacks.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}
