package embedded_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/simplerpc/simplerpc/cluster/embedded"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBothPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := embedded.Start(ctx, embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	in, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sub, err := in.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := out.Publish("x", []byte("by URL")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil || string(m.Data) != "by URL" {
		t.Fatalf("%v, %v", m, err)
	}
	if ns.Addr() == nil {
		t.Error("no address")
	}
}

func TestBadPort(t *testing.T) {
	if _, err := embedded.Start(context.Background(), embedded.WithPort(70000)); err == nil {
		t.Error("port 70000 accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := embedded.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	// A port in use: the server never gets ready.
	short, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	port := ns.Addr().(*net.TCPAddr).Port
	if _, err := embedded.Start(short, embedded.WithPort(port)); !errors.Is(err, embedded.ErrNotReady) {
		t.Errorf("a port in use: %v, want ErrNotReady", err)
	}
}
