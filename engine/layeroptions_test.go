// This file tests that the options of the layers are checked when a
// server is built, not when it starts.

package engine_test

import (
	"errors"
	"testing"

	"github.com/simplerpc/simplerpc/engine"
)

func TestLayerOptionsCheckedAtNewServer(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]engine.ServerOption{
		"max header": engine.WithWebSocket(engine.WebSocketMaxHeader(100)),
		"origin":     engine.WithWebSocket(engine.WebSocketOrigins("[")),
		"nil TLS":    engine.WithTLS(nil),
		"handshake":  engine.WithHandshakeTimeout(0),
		"handshakes": engine.WithMaxHandshakes(0),
	} {
		if _, err := engine.NewServer(echoRouter(), opt); !errors.Is(err, engine.ErrInvalidOption) {
			t.Errorf("%s: %v, want %v", name, err, engine.ErrInvalidOption)
		}
	}
	if _, err := engine.NewServer(echoRouter(), engine.WithWebSocket(engine.WebSocketMaxHeader(256))); err != nil {
		t.Fatal(err)
	}
}
