// Package testkit holds what the tests of simplerpc's packages and modules
// share: a context bounded for a test, waiting for an event or a
// condition, starting a server that stops with the test, a test
// certificate authority, a raw protocol peer and the goroutine-leak check.
// It imports none of the library's packages but codec, so that engine's
// internal tests may use it too.
//
// Every function fails the test it is given (t.Fatal) rather than return
// an error, so it is to be called from the test's own goroutine, as
// t.Fatal is.
package testkit

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Timeout bounds every wait of a test that does not choose its own.
const Timeout = 30 * time.Second

// Context returns a context that ends with the test or after d, whichever
// comes first.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// LeakOptions are the goroutines the leak check ignores: the two of the
// goroutine pool that gnet's own package starts at init
// (github.com/panjf2000/gnet/v2/pkg/pool/goroutine), not ours.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	}
}

// VerifyTestMain runs the tests and fails the run if any of them leaves a
// goroutine behind, beside those of [LeakOptions]: every server, client,
// call and worker must stop with its owner.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m, LeakOptions()...)
}
