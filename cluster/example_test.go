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

// Two servers, each with a node of the cluster as its backend, on an
// embedded NATS server (see twoNodes, below): a client of server 2 gets
// what server 1 sends to all, with the server's own SendAll.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	servers, _, stop := twoNodes(ctx)
	defer stop()

	got := make(chan string, 1)
	r := handler.NewRouter()
	r.On(1, func(_ handler.Conn, data []byte) error { got <- string(data); return nil })
	cl, err := engine.Dial(ctx, servers[1].Addr().String(), r)
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	<-cl.Ready()
	for ctx.Err() == nil && servers[1].Len() == 0 {
		time.Sleep(10 * time.Millisecond) // until node 2 has the connection
	}

	if err := servers[0].SendAll(codec.Opcode(1), map[string]string{"hello": "from node 1"}); err != nil {
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
	servers, nodes, stop := twoNodes(ctx)
	defer stop()
	cl, err := engine.Dial(ctx, servers[1].Addr().String(), handler.NewRouter())
	if err != nil {
		panic(err)
	}
	for ctx.Err() == nil && servers[1].Len() == 0 {
		time.Sleep(10 * time.Millisecond) // until node 2 has the connection
	}
	id := servers[1].Conns()[0].ID()

	outcome := make(chan error, 1)
	send := func() {
		if err := nodes[0].SendConfirm(ctx, id, 5, map[string]string{"hi": "there"}, func(err error) { outcome <- err }); err != nil {
			panic(err)
		}
		fmt.Println("unknown connection:", errors.Is(<-outcome, engine.ErrUnknownConn))
	}
	send()
	_ = cl.Close()
	for ctx.Err() == nil && servers[1].Len() > 0 {
		time.Sleep(10 * time.Millisecond) // until node 2 has seen the close
	}
	send()
	// Output:
	// unknown connection: false
	// unknown connection: true
}

// twoNodes starts an embedded NATS server and two servers whose backends
// are nodes 1 and 2 on it, each connected in-process, and returns once each has heard the other; stop
// shuts everything down.
func twoNodes(ctx context.Context) (servers []*engine.Server, nodes []*cluster.Node, stop func()) {
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
		node, err := cluster.New(nc, num)
		if err != nil {
			panic(err)
		}
		srv, err := engine.NewServer(handler.NewRouter(), engine.WithBackend(node))
		if err != nil {
			panic(err)
		}
		if err := srv.Start(ctx, "127.0.0.1:0"); err != nil { // the node joins first
			panic(err)
		}
		stops = append(stops, nc.Close, func() { _ = srv.Shutdown(ctx) })
		servers, nodes = append(servers, srv), append(nodes, node)
	}
	for ctx.Err() == nil && (len(nodes[0].Nodes()) < 2 || len(nodes[1].Nodes()) < 2) {
		time.Sleep(10 * time.Millisecond) // until each has heard the other
	}
	return servers, nodes, stop
}
