package servers

import (
	"context"
	"encoding/json"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

type simpleServer struct{ srv *engine.Server }

// startSimpleRPC serves the scenarios the way an application would: a raw
// callback that sends the object back, one that sends it to all, and a
// typed call handler.
func startSimpleRPC(addr string, cfg Config) (Server, error) {
	r := handler.NewRouter()
	var srv *engine.Server
	r.On(wire.OpEcho, func(c handler.Conn, data []byte) error {
		return c.SendRaw(wire.OpEcho, data)
	})
	r.On(wire.OpBroadcast, func(_ handler.Conn, data []byte) error {
		return srv.SendAll(wire.OpBroadcast, json.RawMessage(data))
	})
	handler.HandleCall(r, wire.OpCall, func(_ handler.Conn, req wire.CallArgs) (wire.CallArgs, error) {
		return req, nil
	})
	srv, err := engine.NewServer(r, engine.WithMessageSize(cfg.Size), engine.WithEventLoops(cfg.Loops))
	if err != nil {
		return nil, err
	}
	if cfg.Instrument != nil {
		if err := cfg.Instrument(srv); err != nil {
			return nil, err
		}
	}
	if err := srv.Start(context.Background(), addr); err != nil {
		return nil, err
	}
	return &simpleServer{srv: srv}, nil
}

func (s *simpleServer) Addr() string { return s.srv.Addr().String() }
func (s *simpleServer) Close() error { return s.srv.Close() }
