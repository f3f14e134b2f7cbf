package engine_test

// This file holds the disconnect reasons of the statistics: a refused
// authentication counts as its own reason (a handover's are in
// stats_handover_test.go).

import (
	"context"
	"errors"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestStatsAuthFailure: a refused authentication counts as such: a
// disconnect of class auth, a refusal of reason auth, and an Unauthorized
// failure sent, not "error" and "other".
func TestStatsAuthFailure(t *testing.T) {
	t.Parallel()
	gone := make(chan error, 1)
	srv := startServer(t, echoRouter(),
		engine.WithAuth(func(context.Context, handler.Conn, []byte) (string, error) {
			return "", errors.New("no such token")
		}, testTimeout),
		engine.WithOnDisconnect(func(_ handler.Conn, reason error) { gone <- reason }))
	p := dialRaw(t, srv.Addr().String())
	p.greet(1024)
	p.write(`-9{"token":"wrong"}`)
	if op, obj := p.read(); op != codec.OpFailure {
		t.Fatalf("want a failure, got op %d %s", op, obj)
	}
	p.expectEOF() // OnClose, which counts, runs before gnet closes the socket
	st := srv.Stats()
	if st.Disconnects[engine.DisconnectAuth] != 1 || st.Refused[engine.RefuseAuth] != 1 || st.Disconnects[engine.DisconnectError] != 0 ||
		st.FailuresSent[engine.ReasonUnauthorized] != 1 || st.FailuresSent[engine.FailureOther] != 0 {
		t.Errorf("refused %v, disconnects %v, failures sent %v", st.Refused, st.Disconnects, st.FailuresSent)
	}
	select {
	case err := <-gone:
		t.Errorf("the disconnect callback ran (%v) for a connection never admitted", err)
	default:
	}
}
