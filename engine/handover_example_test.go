//go:build unix

package engine_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// A live upgrade inside one process: server old hands its connection to
// server next over a socketpair (across processes, one end is inherited by
// the new binary), the application's value going with it; the client,
// which never notices, is answered by next.
func ExampleServer_HandOver() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	newServer := func(name string) *engine.Server {
		r := handler.NewRouter()
		handler.HandleCall(r, 1, func(c handler.Conn, _ struct{}) (map[string]string, error) {
			return map[string]string{"answer": fmt.Sprintf("%s answers %v", name, c.Value())}, nil
		})
		srv, err := engine.NewServer(r,
			engine.WithOnConnect(func(c handler.Conn) { c.SetValue("player 1") }),
			engine.WithHandover(
				func(c handler.Conn) ([]byte, error) { return []byte(c.Value().(string)), nil },
				func(c handler.Conn, state []byte) error { c.SetValue(string(state)); return nil }))
		if err != nil {
			panic(err)
		}
		return srv
	}
	old, next := newServer("old"), newServer("next")
	if err := old.Start(ctx, "127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer old.Close()
	defer next.Close()
	cl, err := engine.Dial(ctx, old.Addr().String(), handler.NewRouter())
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	var answer map[string]string
	if err := cl.Call(ctx, 1, nil, &answer); err != nil {
		panic(err)
	}
	fmt.Println(answer["answer"])

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		panic(err)
	}
	ends := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "handover")
		nc, err := net.FileConn(f)
		f.Close()
		if err != nil {
			panic(err)
		}
		ends[i] = nc.(*net.UnixConn)
		defer nc.Close()
	}
	adopted := make(chan int, 1)
	go func() {
		n, err := next.Adopt(ctx, ends[1]) // before next.StartOn
		if err != nil {
			panic(err)
		}
		adopted <- n
	}()
	rep, err := old.HandOver(ctx, ends[0])
	if err != nil {
		panic(err)
	}
	fmt.Printf("handed over %d, adopted %d\n", rep.HandedOver, <-adopted)
	if err := cl.Call(ctx, 1, nil, &answer); err != nil {
		panic(err)
	}
	fmt.Println(answer["answer"])
	// Output:
	// old answers player 1
	// handed over 1, adopted 1
	// next answers player 1
}
