package wire

import (
	"testing"

	"github.com/simplerpc/simplerpc/codec"
)

func TestFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(int) ([]byte, error)
		op   codec.Opcode
	}{{"echo", EchoFrame, OpEcho}, {"broadcast", BroadcastFrame, OpBroadcast}} {
		f, err := tc.make(DefaultSize)
		if err != nil {
			t.Fatal(err)
		}
		if len(f) != DefaultSize {
			t.Fatalf("%s: %d bytes", tc.name, len(f))
		}
		PutDigits(f[TimeOff:TimeOff+TimeLen], 1234567890123456789)
		if tc.op == OpBroadcast {
			PutDigits(f[RoundOff:RoundOff+RoundLen], 42)
			if r, ok := Digits(f[RoundOff : RoundOff+RoundLen]); !ok || r != 42 {
				t.Fatalf("round %d %v", r, ok)
			}
		}
		op, _, err := codec.Decode(f)
		if err != nil || op != tc.op {
			t.Fatalf("%s: Decode = %d, %v", tc.name, op, err)
		}
		if v, ok := Digits(f[TimeOff : TimeOff+TimeLen]); !ok || v != 1234567890123456789 {
			t.Fatalf("%s: time %d %v", tc.name, v, ok)
		}
	}
}

func TestDigits(t *testing.T) {
	b := make([]byte, 5)
	PutDigits(b, 42)
	if string(b) != "00042" {
		t.Fatalf("PutDigits = %q", b)
	}
	if _, ok := Digits([]byte("12a")); ok {
		t.Fatal("Digits accepted a letter")
	}
	if _, ok := Digits(nil); ok {
		t.Fatal("Digits accepted nothing")
	}
}

func TestSizeFrame(t *testing.T) {
	op, obj, err := codec.Decode(SizeFrame(256))
	if err != nil || op != codec.OpMessageSize || string(obj) != `{"message_size":256}` {
		t.Fatalf("SizeFrame: %d %s %v", op, obj, err)
	}
}
