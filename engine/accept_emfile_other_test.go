//go:build !unix

package engine_test

// This file stands for accept_emfile_test.go where there are no
// descriptor limits: TestAcceptSurvivesEMFILE does not exist, so no
// process is started as its server.

import "os"

// emfileChild is not reached here: nothing sets SIMPLERPC_EMFILE_CHILD.
func emfileChild() { os.Exit(2) }
