package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/cluster/embedded"
	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Two nodes on an embedded NATS server: a client of node 2 gets what node
// 1 sends to all.
func ExampleNode_SendAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := embedded.Start(ctx) // 127.0.0.1, a free port
	if err != nil {
		panic(err)
	}
	defer ns.Close()

	var nodes []*cluster.Node
	for num := 1; num <= 2; num++ {
		nc, err := ns.Connect() // in-process; nats.Connect(ns.URL()) from elsewhere
		if err != nil {
			panic(err)
		}
		defer nc.Close()
		node, err := cluster.New(handler.NewRouter(), nc, num)
		if err != nil {
			panic(err)
		}
		if err := node.Start(ctx, "127.0.0.1:0"); err != nil {
			panic(err)
		}
		defer node.Shutdown(ctx)
		nodes = append(nodes, node)
	}
	for ctx.Err() == nil && (len(nodes[0].Nodes()) < 2 || len(nodes[1].Nodes()) < 2) {
		time.Sleep(10 * time.Millisecond) // until each has heard the other
	}

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
