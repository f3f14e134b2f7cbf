// This file holds the engine's side of a WebSocket connection
// (internal/wslayer runs RFC 6455): one protocol frame per message both
// ways, at the frame size in force, which this side follows through the
// -2 frames that pass (docs/PROTOCOL.md §3): the layer never knows it.

package engine

import (
	"bytes"
	"errors"

	"github.com/simplerpc/simplerpc/codec"
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
	if cl, ok := c.owner.(*Client); ok {
		env.Upgraded = func() { cl.upgradeDone(nil) }
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
		w.inSize, w.outSize = w.c.inSize, w.c.outSize
	}
	w.plain = plain
	n, ready, err := w.l.Input(in, w.message)
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
		w.outSize = w.c.outSize // a client's: set by the server's -2 frame
	}
	for len(p) > 0 {
		if len(p) < w.outSize {
			w.pend = append([]byte(nil), p...)
			break
		}
		f := p[:w.outSize]
		p = p[w.outSize:]
		dst = w.l.AppendMessage(dst, f)
		if sz, ok := sizeOf(f); ok {
			w.outSize = sz
		}
	}
	return dst, nil
}

func (w *wsConn) pending() bool { return w.l != nil && w.l.Pending() }

func (w *wsConn) stop(err error) error {
	if w.l == nil {
		return err
	}
	c := w.c
	goingAway := c.side.closing.Load()
	if x := c.x.Load(); x != nil && errors.Is(x.closeReason, ErrShutdown) {
		goingAway = true
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
