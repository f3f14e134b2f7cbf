package engine_test

import (
	"os"
	"testing"

	"github.com/simplerpc/simplerpc/internal/testkit"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// server, client, call and worker must stop with its owner
// (testkit.VerifyTestMain).
func TestMain(m *testing.M) {
	if os.Getenv("SIMPLERPC_EMFILE_CHILD") != "" {
		emfileChild() // TestAcceptSurvivesEMFILE's server, in a process of its own
		return
	}
	testkit.VerifyTestMain(m)
}
