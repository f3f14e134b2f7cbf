package cluster_test

import (
	"testing"

	"github.com/simplerpc/simplerpc/internal/testkit"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// node, NATS server and client must stop with its owner
// (testkit.VerifyTestMain).
func TestMain(m *testing.M) {
	testkit.VerifyTestMain(m)
}
