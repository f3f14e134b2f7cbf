package cluster_test

import (
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	_, nodes := newCluster(t, 3)
	ctx := ctxFor(t, 10*time.Second)
	a, b := dial(t, nodes[0]), dial(t, nodes[1])
	if err := nodes[2].Send(a.id, 1, map[string]int{"x": 1}); err != nil {
		t.Fatal(err)
	}
	a.expect(t, ctx, 1, `{"x":1}`)
	var r addResp
	if err := nodes[0].Call(ctx, b.id, opAdd, addReq{A: 2, B: 3}, &r); err != nil || r.Sum != 5 {
		t.Fatal(r, err)
	}
}
