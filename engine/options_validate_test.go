package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestOptionsValidatedAtConstruction: the authentication options are
// checked by NewServer, and credentials by NewDialer and Dial, before
// anything is dialed or served: a value the -9 frame cannot carry is a
// setup error naming the option, not a close on every connection.
func TestOptionsValidatedAtConstruction(t *testing.T) {
	t.Parallel()
	auth := func(context.Context, handler.Conn, []byte) (string, error) { return "x", nil }
	for name, opts := range map[string][]engine.ServerOption{
		"WithAuth":             {engine.WithAuth(auth, 0)},
		"WithAuthFailureLimit": {engine.WithAuth(auth, time.Second), engine.WithAuthFailureLimit(-1, time.Second)},
	} {
		_, err := engine.NewServer(handler.NewRouter(), opts...)
		if !errors.Is(err, engine.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("NewServer with a bad %s: %v", name, err)
		}
	}
	if _, err := engine.NewServer(handler.NewRouter(), engine.WithAuthFailureLimit(3, 0)); !errors.Is(err, engine.ErrInvalidOption) {
		t.Errorf("WithAuthFailureLimit(3, 0): %v", err)
	}
	if _, err := engine.NewServer(handler.NewRouter(), engine.WithAuthFailureLimit(0, 0)); err != nil {
		t.Errorf("WithAuthFailureLimit(0, 0) turns the limit off: %v", err)
	}
	for _, creds := range []any{[]int{1}, "token", make(chan int)} {
		if _, err := engine.NewDialer(handler.NewRouter(), engine.WithCredentials(creds)); !errors.Is(err, engine.ErrInvalidOption) ||
			!strings.Contains(err.Error(), "WithCredentials") {
			t.Errorf("NewDialer with credentials %T: %v", creds, err)
		}
		// Dial fails before dialing: nothing listens there.
		if _, err := engine.Dial(testContext(t), "127.0.0.1:1", handler.NewRouter(), engine.WithCredentials(creds)); !errors.Is(err, engine.ErrInvalidOption) {
			t.Errorf("Dial with credentials %T: %v", creds, err)
		}
	}
	d, err := engine.NewDialer(handler.NewRouter(), engine.WithCredentials(map[string]string{"token": "t"}))
	if err != nil {
		t.Fatalf("good credentials: %v", err)
	}
	d.Close()
}

// TestDialOptionsValidated: credentials given to one Dialer.Dial are
// checked there, before anything is dialed.
func TestDialOptionsValidated(t *testing.T) {
	t.Parallel()
	d, err := engine.NewDialer(handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Dial(testContext(t), "127.0.0.1:1", engine.WithCredentials([]int{1})); !errors.Is(err, engine.ErrInvalidOption) ||
		!strings.Contains(err.Error(), "WithCredentials") {
		t.Errorf("Dialer.Dial with credentials []int: %v", err)
	}
}
