package engine_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// server, client, call and worker must stop with its owner. The two ignored
// functions belong to the goroutine pool that gnet's own package starts at
// init (github.com/panjf2000/gnet/v2/pkg/pool/goroutine), not to us.
func TestMain(m *testing.M) {
	if os.Getenv("SIMPLERPC_EMFILE_CHILD") != "" {
		emfileChild() // TestAcceptSurvivesEMFILE's server, in a process of its own
		return
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
	)
}
