package main

// This file holds the names the tests of serve's listeners and upgrades
// use, which package service now owns.

import (
	"strings"

	"github.com/simplerpc/simplerpc/service"
)

// wsListenerName is service.ListenerName.
func wsListenerName(scheme, path string) string { return service.ListenerName(scheme, path) }

// wsOfName is service.ParseListenerName.
func wsOfName(name string) (scheme, path string) { return service.ParseListenerName(name) }

// successorEnv is env without what a service manager or a predecessor
// gives a process (socket activation, notifications, the upgrade's own
// variables): a serve started with it runs as if on its own.
func successorEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_PID",
			"SIMPLERPC_UPGRADE_PARENT", "SIMPLERPC_UPGRADE_NOTIFY_SOCKET", "SIMPLERPC_UPGRADE_HANDOVER_FD":
			continue
		}
		out = append(out, kv)
	}
	return out
}
