package engine

import (
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

func TestWireReason(t *testing.T) {
	for _, c := range []struct{ obj, want string }{
		{`{"reason":"ArgumentMissing","message":"x"}`, "ArgumentMissing"},
		{`{"id":7,"reason":"Overloaded","message":"x"}`, "Overloaded"},
		{`{ "reason" :  "A" }`, "A"},
		{`{"message":"the \"reason\": \"X\"","reason":"B"}`, "B"},
		{`{"reason":"esc\"aped"}`, ""},
		{`{"reason":7}`, ""},
		{`{"reason"}`, ""},
		{`{"message":"x"}`, ""},
		{``, ""},
	} {
		if got := string(wireReason([]byte(c.obj))); got != c.want {
			t.Errorf("wireReason(%s) = %q, want %q", c.obj, got, c.want)
		}
	}
	if i := wireFailureIndex([]byte("Custom")); failureReasons[i] != FailureOther {
		t.Errorf("Custom counts as %q", failureReasons[i])
	}
	if i := failureIndex(handler.ReasonInternal); failureReasons[i] != handler.ReasonInternal {
		t.Errorf("InternalError counts as %q", failureReasons[i])
	}
}

func TestOpSlots(t *testing.T) {
	seen := map[int]codec.Opcode{}
	for op := codec.Opcode(-7); op < countedOps; op++ {
		i := opSlot(op)
		if prev, dup := seen[i]; dup || i < 0 || i >= slotApp && i < slotProto || i >= slotNeg {
			t.Fatalf("opcode %d: slot %d (also opcode %d: %v)", op, i, prev, dup)
		}
		seen[i] = op
	}
	for _, op := range []codec.Opcode{countedOps, 1 << 20} {
		if opSlot(op) != slotApp {
			t.Errorf("opcode %d is not counted with the application's others", op)
		}
	}
	for _, op := range []codec.Opcode{-8, -1 << 20} {
		if opSlot(op) != slotNeg {
			t.Errorf("opcode %d is not counted with the negative others", op)
		}
	}
	for _, c := range []struct {
		f  string
		op codec.Opcode
	}{{`0{}`, 0}, {`-4{"id":1}`, -4}, {`255{}`, 255}, {`123456{}`, 123456}} {
		if got := frameOp([]byte(c.f)); got != c.op {
			t.Errorf("frameOp(%s) = %d, want %d", c.f, got, c.op)
		}
	}
}

// TestCountingAllocs holds what the hot path counts to zero allocations.
func TestCountingAllocs(t *testing.T) {
	var s loopStats
	fail := []byte(`{"reason":"ArgumentMissing","message":"x"}`)
	if n := testing.AllocsPerRun(100, func() {
		s.frameIn(0, 256, nil)
		s.frameIn(codec.OpFailure, 256, fail)
		s.frameOut(codec.OpReply, 256)
		s.failureSent(handler.ReasonArgumentMissing)
	}); n != 0 {
		t.Fatalf("counting allocates %v times, want 0", n)
	}
}

// BenchmarkCounting is what one echoed frame costs the counters: one
// frame in, one out.
func BenchmarkCounting(b *testing.B) {
	var s loopStats
	for b.Loop() {
		s.frameIn(0, 256, nil)
		s.frameOut(0, 256)
	}
}
