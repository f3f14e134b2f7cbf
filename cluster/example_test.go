package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/cluster/embedded"
	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Two nodes on an embedded NATS server (see twoNodes, below): a client of
// node 2 gets what node 1 sends to all.
func ExampleNode_SendAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := twoNodes(ctx)
	defer stop()

	got := make(chan string, 1)
	r := handler.NewRouter()
	r.On(1, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	cl, err := engine.Dial(ctx, nodes[1].Server().Addr().String(), r)
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	<-cl.Ready()
	for ctx.Err() == nil && nodes[1].Server().Len() == 0 {
		time.Sleep(10 * time.Millisecond) // until node 2 has the connection
	}

	if err := nodes[0].SendAll(codec.Opcode(1), map[string]string{"hello": "from node 1"}); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: {"hello":"from node 1"}
}

// A send by net id that says whether the connection took it: to a client
// of node 2, from node 1, then to the same net id once the client has gone.
func ExampleNode_SendConfirm() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nodes, stop := twoNodes(ctx)
	defer stop()
	cl, err := engine.Dial(ctx, nodes[1].Server().Addr().String(), handler.NewRouter())
	if err != nil {
		panic(err)
	}
	for ctx.Err() == nil && nodes[1].Server().Len() == 0 {
		time.Sleep(10 * time.Millisecond) // until node 2 has the connection
	}
	id := nodes[1].Server().Conns()[0].ID()

	outcome := make(chan error, 1)
	send := func() {
		if err := nodes[0].SendConfirm(ctx, id, 5, map[string]string{"hi": "there"}, func(err error) { outcome <- err }); err != nil {
			panic(err)
		}
		fmt.Println("unknown connection:", errors.Is(<-outcome, engine.ErrUnknownConn))
	}
	send()
	_ = cl.Close()
	for ctx.Err() == nil && nodes[1].Server().Len() > 0 {
		time.Sleep(10 * time.Millisecond) // until node 2 has seen the close
	}
	send()
	// Output:
	// unknown connection: false
	// unknown connection: true
}

// twoNodes starts an embedded NATS server and nodes 1 and 2 on it, each
// connected in-process, and returns once each has heard the other; stop
// shuts everything down.
func twoNodes(ctx context.Context) (nodes []*cluster.Node, stop func()) {
	ns, err := embedded.Start(ctx) // 127.0.0.1, a free port
	if err != nil {
		panic(err)
	}
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		_ = ns.Close()
	}
	for num := 1; num <= 2; num++ {
		nc, err := ns.Connect() // in-process; nats.Connect(ns.URL(), nats.Token(ns.Token())) from elsewhere
		if err != nil {
			panic(err)
		}
		node, err := cluster.New(handler.NewRouter(), nc, num)
		if err != nil {
			panic(err)
		}
		if err := node.Start(ctx, "127.0.0.1:0"); err != nil {
			panic(err)
		}
		stops = append(stops, nc.Close, func() { _ = node.Shutdown(ctx) })
		nodes = append(nodes, node)
	}
	for ctx.Err() == nil && (len(nodes[0].Nodes()) < 2 || len(nodes[1].Nodes()) < 2) {
		time.Sleep(10 * time.Millisecond) // until each has heard the other
	}
	return nodes, stop
}
