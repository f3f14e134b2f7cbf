// This file checks the example's systemd units for what package service
// needs of them.

package main

import (
	"os"
	"strings"
	"testing"
)

// TestUnits checks that rooms.service has what an upgrade and the
// notifications need, and rooms.socket a socket for it.
func TestUnits(t *testing.T) {
	for file, wants := range map[string][]string{
		"rooms.service": {"Type=notify", "NotifyAccess=all", "ExecReload=/bin/kill -HUP $MAINPID", "Requires=rooms.socket", "WatchdogSec="},
		"rooms.socket":  {"ListenStream="},
	} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for _, w := range wants {
			found := false
			for _, l := range lines {
				found = found || strings.HasPrefix(strings.TrimSpace(l), w)
			}
			if !found {
				t.Errorf("%s has no line %q", file, w)
			}
		}
	}
}
