package servers

import (
	"context"
	"encoding/json"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"

	"github.com/simplerpc/simplerpc/benchmarks/internal/wire"
)

type simpleServer struct {
	srv  *engine.Server
	addr string
}

// startSimpleRPC serves the scenarios the way an application would: a raw
// callback that sends the object back, one that sends it to all, and a
// typed call handler; over TLS (engine.WithTLS) or WebSocket (a ws://
// address at wire.WSPath) as tr says.
func startSimpleRPC(addr string, cfg Config, tr Transport) (Server, error) {
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
	opts := []engine.ServerOption{engine.WithMessageSize(cfg.Size), engine.WithEventLoops(cfg.Loops)}
	listen := addr
	switch tr {
	case TLS:
		tc, err := ServerTLS()
		if err != nil {
			return nil, err
		}
		opts = append(opts, engine.WithTLS(tc))
	case WebSocket:
		opts = append(opts, engine.WithWebSocket())
		listen = "ws://" + addr + wire.WSPath
	}
	srv, err := engine.NewServer(r, opts...)
	if err != nil {
		return nil, err
	}
	if cfg.Instrument != nil {
		if err := cfg.Instrument(srv); err != nil {
			return nil, err
		}
	}
	if err := srv.Start(context.Background(), listen); err != nil {
		return nil, err
	}
	return &simpleServer{srv: srv, addr: srv.Addr().String()}, nil
}

func (s *simpleServer) Addr() string { return s.addr }
func (s *simpleServer) Close() error { return s.srv.Close() }
