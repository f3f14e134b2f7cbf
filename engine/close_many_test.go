package engine_test

import (
	"testing"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestCloseManyWhileSending closes a thousand clients, one by one and then
// all at once through their dialer, while the server is still writing to
// them. A close handled while the loop drains its queue runs OnClose inside
// the drain; that nested round must only queue (a regression: it used to
// share the drain's spare task buffer and process cleared tasks).
func TestCloseManyWhileSending(t *testing.T) {
	t.Parallel()
	srv := startServer(t, handler.NewRouter(), engine.WithMessageSize(64))
	for round := range 2 {
		d, err := engine.NewDialer(handler.NewRouter())
		if err != nil {
			t.Fatal(err)
		}
		cls := make([]*engine.Client, 1000)
		for i := range cls {
			if cls[i], err = d.Dial(testContext(t), srv.Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
		for _, cl := range cls {
			<-cl.Ready()
			_ = cl.Send(1, map[string]int{"round": round})
		}
		_ = srv.SendAll(2, map[string]string{"to": "all"})
		if round == 0 {
			for _, cl := range cls[:500] {
				_ = cl.Close()
				<-cl.Done()
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		for _, cl := range cls {
			<-cl.Done()
		}
	}
}
