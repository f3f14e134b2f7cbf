package handler_test

import (
	"errors"
	"testing"

	"github.com/simplerpc/simplerpc/handler"
)

// TestPendingOrder: Then gets the outcome once, whether the Pending was
// resolved before or after; only the first answer counts; a rejection
// becomes the failure a handler's error would.
func TestPendingOrder(t *testing.T) {
	type outcome struct {
		res  any
		fail *handler.Error
	}
	got := make(chan outcome, 2)
	then := func(res any, fail *handler.Error) { got <- outcome{res, fail} }

	before := handler.NewPending()
	if !before.Resolve(map[string]int{"a": 1}) || before.Reject(errors.New("late")) {
		t.Fatal("Resolve then Reject: only the first should take effect")
	}
	before.Then(then)
	if o := <-got; o.fail != nil || o.res.(map[string]int)["a"] != 1 {
		t.Fatalf("resolved before Then: %+v", o)
	}

	after := handler.NewPending()
	after.Then(then)
	if len(got) != 0 {
		t.Fatal("Then ran before the Pending was resolved")
	}
	after.Reject(handler.ArgumentMissing("want x"))
	if o := <-got; o.fail == nil || o.fail.Reason != handler.ReasonArgumentMissing || o.fail.Message != "want x" {
		t.Fatalf("rejected after Then: %+v", o)
	}

	plain := handler.NewPending()
	plain.Then(then)
	plain.Reject(errors.New("secret detail"))
	if o := <-got; o.fail == nil || o.fail.Reason != handler.ReasonInternal || o.fail.Message == "secret detail" {
		t.Fatalf("a plain error: %+v, want an internal failure without its text", o.fail)
	}
	if len(got) != 0 {
		t.Fatal("an outcome was delivered twice")
	}
}
