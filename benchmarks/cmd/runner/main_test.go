package main

import (
	"slices"
	"testing"
)

func TestRotate(t *testing.T) {
	s := []string{"a", "b", "c"}
	if got := rotate(s, 1); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("rotate = %v", got)
	}
	if got := rotate(s, 3); !slices.Equal(got, s) {
		t.Fatalf("rotate = %v", got)
	}
}

func TestOverride(t *testing.T) {
	p := fullPlan()
	if err := p.override("100x16,1000x1", "1x1", "1000,5000", "16,64", 2000); err != nil {
		t.Fatal(err)
	}
	if len(p.Echo) != 2 || p.Echo[1] != [2]int{1000, 1} || len(p.Calls) != 1 ||
		!slices.Equal(p.IdlePoints, []int{1000, 5000}) || p.BroadcastConns != 2000 ||
		!slices.Equal(p.HandshakeConns, []int{16, 64}) {
		t.Fatalf("plan %+v", p)
	}
	for _, bad := range [][4]string{{"100", "", "", ""}, {"", "0x1", "", ""}, {"", "", "5000,1000", ""}, {"", "", "", "0"}} {
		q := fullPlan()
		if err := q.override(bad[0], bad[1], bad[2], bad[3], 0); err == nil {
			t.Errorf("override(%q) succeeded", bad)
		}
	}
}
