// Tests of groups (rooms): joining, leaving, sending to members, and the
// same under concurrent use.

package engine_test

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestGroups covers named groups on a server with two loops: Join and
// Leave by net id, SendGroup to members only with the JSON encoded once,
// SendGroupExcept and SendAllExcept skipping one connection, GroupLen, and
// membership ending with the connection.
func TestGroups(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	const n = 5
	ids := make([]uint64, n)
	hellos := make(chan struct{}, n)
	sr := handler.NewRouter()
	var idsMu sync.Mutex // guards ids while the clients say hello
	sr.On(1, func(c handler.Conn, data []byte) error {
		var m struct{ I int }
		if err := codec.Unmarshal(data, &m); err != nil {
			return err
		}
		idsMu.Lock()
		ids[m.I] = c.ID()
		idsMu.Unlock()
		hellos <- struct{}{}
		return nil
	})
	ev := newConnEvents()
	srv := startServer(t, sr, append(ev.options(), engine.WithEventLoops(2))...)

	// Each client records what it gets on opcode 9, in order.
	got := make([]*recorder, n)
	cr := handler.NewRouter()
	cr.On(9, func(c handler.Conn, data []byte) error {
		got[c.Value().(int)].add(string(data))
		return nil
	})
	d, err := engine.NewDialer(cr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	clients := make([]*engine.Client, n)
	for i := range n {
		got[i] = newRecorder()
		cl, err := d.Dial(ctx, srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cl.Conn().SetValue(i)
		if err := cl.Send(1, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
	}
	for range n {
		select {
		case <-hellos:
		case <-ctx.Done():
			t.Fatal("timed out waiting for the clients")
		}
	}

	// step sends a marker to all, waits until each live client has it, and
	// checks what each got since the last step (the marker included).
	step := 0
	seen := make([]int, n)
	check := func(live []int, want map[int][]string) {
		t.Helper()
		step++
		marker := fmt.Sprintf(`{"step":%d}`, step)
		if err := srv.SendAll(9, rawJSON(marker)); err != nil {
			t.Fatal(err)
		}
		for _, i := range live {
			w := append(slices.Clone(want[i]), marker)
			frames := got[i].wait(t, seen[i]+len(w))
			if g := frames[seen[i]:]; !slices.Equal(g, w) {
				t.Fatalf("step %d: client %d got %q, want %q", step, i, g, w)
			}
			seen[i] += len(w)
		}
	}
	all := []int{0, 1, 2, 3, 4}

	for _, i := range []int{0, 1, 2} {
		if err := srv.Group("room").Join(ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Group("room").Join(ids[0]); err != nil { // joining twice is one membership
		t.Fatal(err)
	}
	if l := srv.Group("room").Len(); l != 3 {
		t.Fatalf("GroupLen %d, want 3", l)
	}
	var encoded atomic.Int32
	if err := srv.Group("room").Send(9, countingValue{&encoded}); err != nil {
		t.Fatal(err)
	}
	hello := `{"hello":"all"}`
	check(all, map[int][]string{0: {hello}, 1: {hello}, 2: {hello}})
	if c := encoded.Load(); c != 1 {
		t.Fatalf("SendGroup encoded the value %d times, want once", c)
	}

	if err := srv.Group("room").SendExcept(ids[0], 9, rawJSON(`{"m":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.SendAllExcept(ids[4], 9, rawJSON(`{"m":"c"}`)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Group("nobody").Send(9, rawJSON(`{"m":"x"}`)); err != nil {
		t.Fatal(err)
	}
	b, c := `{"m":"b"}`, `{"m":"c"}`
	check(all, map[int][]string{0: {c}, 1: {b, c}, 2: {b, c}, 3: {c}})

	srv.Group("room").Leave(ids[1])
	srv.Group("room").Leave(ids[3]) // not a member: nothing happens
	if l := srv.Group("room").Len(); l != 2 {
		t.Fatalf("GroupLen after Leave %d, want 2", l)
	}
	if err := srv.Group("room").Send(9, rawJSON(`{"m":"d"}`)); err != nil {
		t.Fatal(err)
	}
	check(all, map[int][]string{0: {`{"m":"d"}`}, 2: {`{"m":"d"}`}})

	// Membership ends with the connection.
	clients[2].Close()
	if r := ev.reasonFor(ctx, t, ids[2]); !errors.Is(r, io.EOF) {
		t.Fatalf("disconnect reason %v", r)
	}
	if l := srv.Group("room").Len(); l != 1 {
		t.Fatalf("GroupLen after a member closed %d, want 1", l)
	}
	if err := srv.Group("room").Send(9, rawJSON(`{"m":"e"}`)); err != nil {
		t.Fatal(err)
	}
	check([]int{0, 1, 3, 4}, map[int][]string{0: {`{"m":"e"}`}})

	for _, id := range []uint64{ids[2], 1 << 40} {
		if err := srv.Group("room").Join(id); !errors.Is(err, engine.ErrUnknownConn) {
			t.Fatalf("Join of closed or unknown id %d: %v", id, err)
		}
	}
	if err := srv.Group("").Send(9, rawJSON(`{}`)); err == nil {
		t.Fatal("SendGroup with an empty name succeeded")
	}
}

// rawJSON is a value that encodes as the given object.
type rawJSON string

func (j rawJSON) MarshalJSON() ([]byte, error) { return []byte(j), nil }

// TestGroupsConcurrent runs Join, Leave, GroupLen and the group sends from
// many goroutines while members connect and disconnect (meaningful under
// -race), then checks that no closed connection is left in any group.
func TestGroupsConcurrent(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	ev := newConnEvents()
	srv := startServer(t, handler.NewRouter(), append(ev.options(), engine.WithEventLoops(2))...)
	cr := handler.NewRouter()
	cr.On(9, func(handler.Conn, []byte) error { return nil })
	d, err := engine.NewDialer(cr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	const n = 8
	clients := make([]*engine.Client, n)
	ids := make([]uint64, n)
	for i := range n {
		if clients[i], err = d.Dial(ctx, srv.Addr().String()); err != nil {
			t.Fatal(err)
		}
		// Once the client has the -2 frame, the server's connect event for
		// it is queued: it is the only one not yet read.
		select {
		case <-clients[i].Ready():
		case <-ctx.Done():
			t.Fatal("timed out connecting")
		}
		ids[i] = ev.next(ctx, t).ID()
	}
	groups := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 300 {
				group := groups[(g+k)%len(groups)]
				id := ids[(g*7+k)%n]
				switch k % 5 {
				case 0, 1:
					if err := srv.Group(group).Join(id); err != nil && !errors.Is(err, engine.ErrUnknownConn) && !errors.Is(err, engine.ErrClosed) {
						t.Errorf("Join: %v", err)
					}
				case 2:
					srv.Group(group).Leave(id)
				case 3:
					if err := srv.Group(group).SendExcept(id, 9, rawJSON(`{"k":1}`)); err != nil {
						t.Errorf("SendGroupExcept: %v", err)
					}
				case 4:
					_ = srv.Group(group).Len()
					if err := srv.Group(group).Send(9, rawJSON(`{"k":2}`)); err != nil {
						t.Errorf("SendGroup: %v", err)
					}
				}
			}
		})
	}
	// Half the members leave while the goroutines run.
	closed := make(map[uint64]bool)
	for i := 0; i < n; i += 2 {
		clients[i].Close()
		closed[ids[i]] = true
	}
	wg.Wait()
	for range n / 2 {
		select {
		case e := <-ev.closed:
			if !closed[e.id] {
				t.Fatalf("connection %d closed", e.id)
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for the disconnects")
		}
	}
	// Only live connections can be left: removing them empties every group.
	for _, g := range groups {
		for _, id := range ids {
			if !closed[id] {
				srv.Group(g).Leave(id)
			}
		}
		if l := srv.Group(g).Len(); l != 0 {
			t.Fatalf("group %q holds %d closed connections", g, l)
		}
	}
}
