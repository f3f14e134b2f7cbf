package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
	"github.com/simplerpc/simplerpc/service"
)

// Example runs an echo server as a service. A real one calls
// service.Run(context.Background(), srv, service.WithAddrs(":4000")) and
// exits when it returns: it stops on SIGTERM, upgrades on SIGHUP, and
// under systemd takes its socket units' sockets and says READY=1. Here
// the readiness hook makes one call and ends the context, which stops it.
func Example() {
	r := handler.NewRouter()
	r.OnCall(0, func(_ handler.Conn, data []byte) (any, error) {
		return json.RawMessage(append([]byte(nil), data...)), nil // data is borrowed
	})
	srv, err := engine.NewServer(r)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	err = service.Run(ctx, srv,
		service.WithAddrs("127.0.0.1:0"),
		service.WithLogger(slog.New(slog.DiscardHandler)),
		service.WithOnReady(func(ctx context.Context, addrs []string) error {
			defer stop()
			cl, err := engine.Dial(ctx, addrs[0], handler.NewRouter())
			if err != nil {
				return err
			}
			defer cl.Close()
			var got map[string]string
			if err := cl.Call(ctx, 0, map[string]string{"hello": "service"}, &got); err != nil {
				return err
			}
			fmt.Println("echoed:", got["hello"])
			return nil
		}))
	fmt.Println("stopped:", err)
	// Output:
	// echoed: service
	// stopped: <nil>
}
