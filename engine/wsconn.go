// This file holds the engine's side of a WebSocket connection
// (internal/wslayer runs RFC 6455): one protocol frame per message both
// ways, at the frame size in force, which this side follows through the
// -2 frames that pass (docs/PROTOCOL.md §3): the layer never knows it;
// and the state such a connection leaves with in a handover, and resumes
// from in the successor.

package engine

import (
	"bytes"
	"errors"
	"slices"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/internal/handoverwire"
	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// wsSide is the WebSocket of one listener, or of one client (wsclient.go).
type wsSide struct{ cfg wslayer.Config }

func (s *wsSide) newLayer(c *conn) layer { return &wsConn{c: c, cfg: &s.cfg} }

// wsConn is the layer of one WebSocket connection. Loop-only.
type wsConn struct {
	c   *conn
	cfg *wslayer.Config
	l   *wslayer.Layer

	inSize  int    // the frame size of inbound messages, as the -2 frames set it; 0 until known
	outSize int    // the frame size of outbound frames, as the -2 frames set it; 0 until known
	pend    []byte // an outbound partial frame (the engine writes whole ones)
	plain   []byte // input's plain, while the layer hands it messages

	// Of a connection adopted from a predecessor (adopt.go), until read:
	resumed *wslayer.State // the predecessor's layer's state; nil for a new connection
	stash   []byte         // the protocol's bytes its messages carried, not handled there
	wire    []byte         // the socket's bytes it had read, not yet a whole frame
}

// resumedWS returns the layer maker of a WebSocket connection adopted
// with st: it goes on where the predecessor's layer stopped, past the
// upgrade, the predecessor's unread bytes first.
func resumedWS(cfg *wslayer.Config, st *handoverwire.WS, unread []byte) func(*conn) layer {
	return func(c *conn) layer {
		return &wsConn{c: c, cfg: cfg, inSize: st.In, outSize: st.Out,
			resumed: &wslayer.State{Op: st.Op, Msg: st.Msg}, stash: slices.Clone(unread), wire: slices.Clone(st.Wire)}
	}
}

// export returns the state of w for a handover, with gnet's bytes not
// read yet (in), or false if it cannot leave the process: the upgrade is
// not over, a close frame went either way, or a partial frame of ours
// waits. On the loop.
func (w *wsConn) export(in []byte) (*handoverwire.WS, bool) {
	if w.l == nil || len(w.pend) > 0 || w.cfg.Client {
		return nil, false
	}
	st, ok := w.l.Export()
	if !ok {
		return nil, false
	}
	wire := append(slices.Clone(w.wire), in...)
	return &handoverwire.WS{Path: w.cfg.Path, Binary: w.cfg.Binary, In: w.inSize, Out: w.outSize,
		Op: st.Op, Msg: st.Msg, Wire: wire}, true
}

func (w *wsConn) start(out func([]byte) error, wake func()) error {
	c := w.c
	env := wslayer.Env{
		Out:  out,
		Wake: wake,
		Close: func(reason error) {
			_ = c.loop.enqueue(task{kind: taskFunc, fn: func() { c.closeWith(reason) }}, nil)
		},
		Limit: w.limit,
	}
	if cl, ok := c.owner().(*Client); ok {
		env.Upgraded = func() { cl.upgradeDone(nil) }
	}
	if w.resumed != nil {
		w.l = wslayer.Resume(w.cfg, env, *w.resumed)
		w.resumed = nil
		wake() // the predecessor's bytes are there to read, whether or not the socket brings more
		return nil
	}
	w.l = wslayer.New(w.cfg, env)
	return w.l.Start()
}

// limit is the largest message the peer may send: the frame size in force,
// or before a client knows it, the largest it accepts.
func (w *wsConn) limit() int {
	if w.inSize != 0 {
		return w.inSize
	}
	return w.c.side.cfg.maxSize
}

func (w *wsConn) input(plain, in []byte) ([]byte, int, bool, error) {
	if w.inSize == 0 && !w.cfg.Client {
		// The server's sizes are its own from the start.
		w.inSize, w.outSize = int(w.c.inSize), int(w.c.outSize)
	}
	if w.stash != nil {
		plain = append(plain, w.stash...)
		w.stash = nil
	}
	w.plain = plain
	var n int
	var ready bool
	var err error
	if len(w.wire) > 0 {
		// The predecessor's bytes, then the socket's: what the layer
		// consumed of both is taken from the predecessor's first.
		buf := append(w.wire, in...)
		k := 0
		k, ready, err = w.l.Input(buf, w.message)
		if k >= len(w.wire) {
			n, w.wire = k-len(w.wire), nil
		} else {
			w.wire = w.wire[:copy(w.wire, buf[k:len(w.wire)])]
		}
	} else {
		n, ready, err = w.l.Input(in, w.message)
	}
	plain, w.plain = w.plain, nil
	return plain, n, ready, err
}

// message adds one message to plain as a protocol frame: padded to the
// frame size in force, which a -2 frame changes for the messages after it.
func (w *wsConn) message(m []byte) {
	start := len(w.plain)
	w.plain = append(w.plain, m...)
	if w.inSize == 0 {
		// A client's first message, the server's -2 frame: at the size it
		// announces.
		if sz, ok := sizeOf(m); ok {
			w.inSize = sz
		}
	}
	for range w.inSize - len(m) {
		w.plain = append(w.plain, ' ')
	}
	if sz, ok := sizeOf(w.plain[start:]); ok {
		w.inSize = sz
	}
}

// output wraps each frame of p in a message. p is a run of whole frames;
// each is the size the -2 frames before it set, starting from the size in
// force at the upgrade, so a -2 passing through changes the size of the
// frames after it (docs/PROTOCOL.md §3).
func (w *wsConn) output(dst, p []byte) ([]byte, error) {
	if len(w.pend) > 0 {
		p = append(w.pend, p...)
		w.pend = nil
	}
	if w.outSize == 0 {
		w.outSize = int(w.c.outSize) // a client's: set by the server's -2 frame
	}
	for len(p) > 0 {
		if len(p) < w.outSize {
			w.pend = append([]byte(nil), p...)
			break
		}
		f := p[:w.outSize]
		p = p[w.outSize:]
		dst = w.l.AppendMessage(dst, f)
		w.c.loop.wsFramed++
		if sz, ok := sizeOf(f); ok {
			w.outSize = sz
		}
	}
	return dst, nil
}

// shares reports whether w frames what it is given at size as a server's
// whole messages, one per frame, nothing of its own pending before them:
// the messages a run of sends to all built once are then its bytes too
// (fanRun, broadcast.go). On the loop.
func (w *wsConn) shares(size int) bool {
	return w.l != nil && !w.cfg.Client && len(w.pend) == 0 && w.outSize == size && w.l.Writable()
}

func (w *wsConn) pending() bool { return len(w.wire) > 0 || w.l != nil && w.l.Pending() }

func (w *wsConn) stop(err error) error {
	if w.l == nil {
		return err
	}
	c := w.c
	goingAway := c.side.closing.Load()
	if x := c.x.Load(); x != nil && errors.Is(x.closeReason, ErrShutdown) {
		goingAway = true
	} else if x != nil && errors.Is(x.closeReason, ErrHandedOver) {
		return err // the successor goes on with it: no close frame
	}
	return w.l.Stop(err, goingAway)
}

// sizeOf returns the size a -2 frame announces; only such frames report
// true. It is cheap for all others.
func sizeOf(f []byte) (int, bool) {
	t := bytes.TrimLeft(f, " ")
	if len(t) < 3 || t[0] != '-' || t[1] != '2' || (t[2] != '{' && t[2] != ' ') {
		return 0, false
	}
	op, obj, err := codec.Decode(f)
	if err != nil || op != codec.OpMessageSize {
		return 0, false
	}
	var m struct {
		Size int64 `json:"message_size"`
	}
	if codec.Unmarshal(obj, &m) != nil || m.Size < codec.MinMessageSize || m.Size > codec.MaxMessageSize {
		return 0, false
	}
	return int(m.Size), true
}

// movable reports whether c's state can leave the process: plain TCP or
// Unix, and plain WebSocket (ws://), not TLS (crypto/tls cannot export a
// live session). On its loop.
func (c *conn) movable() bool {
	if tl := c.layered(); tl == nil || isReplay(tl.l) {
		return true
	}
	_, ok := c.wsLayer()
	return ok
}

// wsLayer returns c's layer if it is a plain WebSocket. On its loop.
func (c *conn) wsLayer() (*wsConn, bool) {
	tl := c.layered()
	if tl == nil {
		return nil, false
	}
	w, ok := tl.l.(*wsConn)
	return w, ok
}

// tlPlain returns what c's layer decoded and the frame reader has not
// read. On its loop.
func (c *conn) tlPlain() []byte {
	b, _ := c.layered().Peek(-1)
	return b
}
