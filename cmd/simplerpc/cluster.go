package main

// This file holds serve's cluster mode and the demo opcodes that name
// connections: the --cluster and --node flags, the NATS connection (or
// the embedded NATS server of --cluster embedded) with its credentials
// (natsauth.go), the demo server alone or with a cluster node as its
// backend, and opcodes 1 to 3 (4 and 5 are in groups.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/simplerpc/simplerpc/cluster"
	"github.com/simplerpc/simplerpc/cluster/embedded"
	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// Opcodes of the demo server that name connections.
const (
	opRelay  = 2 // {"to": net id, "data": {...}}: data goes to net id on opcode 2
	opWhoami = 3 // answers {"net_id": N, "node": "NAME"}
)

// Failure reasons of the demo's relays.
const (
	reasonUnknownConn = "UnknownConn" // the net id is not connected anywhere
	reasonRelayFailed = "RelayFailed" // the cluster could not carry the frame
)

// Cluster settings of the demo.
const (
	embeddedScheme = "embedded"
	maxNodeName    = 64
	// relayTimeout bounds the wait for another node to confirm a relay
	// (cluster.WithCallTimeout): a node that hangs with its NATS connection
	// open is taken for down at the heartbeat timeout, 3s, well before.
	relayTimeout = 10 * time.Second
	// natsReconnectWait is the pause between reconnection attempts to NATS,
	// which go on for ever.
	natsReconnectWait = 250 * time.Millisecond
)

// clusterOptions are serve's cluster flags.
type clusterOptions struct {
	url    string // --cluster: "", "embedded", "embedded:PORT", or NATS URLs
	name   string // --node
	number int    // --node-number; 0: from the name
	auth   natsAuth
}

// addClusterFlags adds the cluster flags to f.
func addClusterFlags(f *pflag.FlagSet, o *clusterOptions) {
	f.StringVar(&o.url, "cluster", "", "join a cluster over NATS at this URL (nats://host:port, several separated by commas), or 'embedded' (or 'embedded:PORT') to start a NATS server on 127.0.0.1 in this process (none if empty: a server alone)")
	f.StringVar(&o.name, "node", "", "this server's node name, answered on opcode 3: 1 to 64 letters, digits, '.', '-' or '_' (needed with --cluster)")
	f.IntVar(&o.number, "node-number", 0, "this node's number in the cluster, 1 to 1023, unique among the nodes (0: derived from --node)")
	addNATSAuthFlags(f, &o.auth)
}

// check validates the flags without touching the network.
func (o clusterOptions) check() error {
	if o.name != "" && !validNodeName(o.name) {
		return usagef("--node %q: want 1 to %d letters, digits, '.', '-' or '_'", o.name, maxNodeName)
	}
	if o.number < 0 || o.number > cluster.MaxNode {
		return usagef("--node-number %d must lie within 1..%d (0: derived from --node)", o.number, cluster.MaxNode)
	}
	if o.url == "" {
		if o.number != 0 {
			return usagef("--node-number needs --cluster")
		}
		if f := o.auth.given(); f != "" {
			return usagef("%s needs --cluster", f)
		}
		return nil
	}
	if o.name == "" {
		return usagef("--cluster needs --node NAME, this server's name in the cluster")
	}
	if _, ok, err := o.embeddedPort(); ok {
		if err != nil {
			return err
		}
		return o.auth.checkEmbedded()
	}
	if err := o.auth.checkURL(); err != nil {
		return err
	}
	for _, u := range strings.Split(o.url, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || (p.Scheme != "nats" && p.Scheme != "tls") || p.Hostname() == "" || p.Port() == "" {
			return usagef("--cluster %q: want nats://host:port (or tls://), several separated by commas, or embedded", o.url)
		}
	}
	return nil
}

// embeddedPort returns the port of --cluster embedded[:PORT] (0 for a free
// one); ok is false for a NATS URL.
func (o clusterOptions) embeddedPort() (port int, ok bool, err error) {
	rest, ok := strings.CutPrefix(o.url, embeddedScheme)
	switch {
	case !ok:
		return 0, false, nil
	case rest == "":
		return 0, true, nil
	case rest[0] != ':':
		return 0, false, nil
	}
	port, err = strconv.Atoi(rest[1:])
	if err != nil || port < 1 || port > 65535 {
		return 0, true, usagef("--cluster %q: the port must be a number from 1 to 65535", o.url)
	}
	return port, true, nil
}

// nodeNumber returns --node-number, or the number derived from the name:
// its FNV-1a hash, 1 to cluster.MaxNode. Two names may share a number; the
// second node then fails to start, and --node-number settles it.
func (o clusterOptions) nodeNumber() int {
	if o.number != 0 {
		return o.number
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(o.name))
	return int(h.Sum32()%cluster.MaxNode) + 1
}

// validNodeName accepts 1 to maxNodeName letters, digits, '.', '-', '_'.
func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > maxNodeName {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_'
		if !ok {
			return false
		}
	}
	return true
}

// bus is serve's link to a cluster: the NATS connection, and the embedded
// NATS server when serve runs one. A nil bus is a server alone.
type bus struct {
	nc     *nats.Conn
	ns     *embedded.Server // nil for an external NATS
	name   string
	number int
}

// joinBus connects to the cluster's NATS, or starts the embedded one; nil
// without --cluster. The connection reconnects for ever once made.
func joinBus(ctx context.Context, log *slog.Logger, o clusterOptions) (*bus, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.url == "" {
		return nil, nil
	}
	b := &bus{name: o.name, number: o.nodeNumber()}
	// NATS reports every slow-consumer drop as an error of its own: at most
	// a line a second, with how many there were.
	var last, times atomic.Int64
	opts := []nats.Option{
		nats.Name("simplerpc " + o.name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(natsReconnectWait),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			times.Add(1)
			now, prev := time.Now().UnixNano(), last.Load()
			if now-prev >= int64(time.Second) && last.CompareAndSwap(prev, now) {
				log.Warn("NATS", "err", err, "times", times.Swap(0))
			}
		}),
	}
	var err error
	if port, ok, _ := o.embeddedPort(); ok {
		creds, how, err := o.auth.embeddedOptions(log)
		if err != nil {
			return nil, err
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if b.ns, err = embedded.Start(sctx, append(creds, embedded.WithPort(port))...); err != nil {
			return nil, fmt.Errorf("serve: start the embedded NATS server: %w", err)
		}
		log.Info("embedded NATS listening", append([]any{"url", b.ns.URL()}, how...)...)
		b.nc, err = b.ns.Connect(opts...)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("serve: connect to the embedded NATS server: %w", err)
		}
		return b, nil
	}
	creds, err := o.auth.urlOptions()
	if err != nil {
		return nil, err
	}
	b.nc, err = nats.Connect(o.url, append(append(opts, creds...), nats.Timeout(5*time.Second))...)
	if err != nil {
		b.close()
		if errors.Is(err, nats.ErrAuthorization) {
			err = fmt.Errorf("%w (give the cluster's credentials: %s)", err, credentialFlags)
		}
		return nil, fmt.Errorf("serve: connect to NATS at %s: %w", o.url, err)
	}
	if !b.nc.AuthRequired() {
		log.Warn("the NATS server requires no authentication: any of its clients can forge this cluster's traffic (docs/CLUSTER.md §7)",
			"url", o.url)
	}
	return b, nil
}

// close closes the NATS connection and stops the embedded server.
func (b *bus) close() {
	if b == nil {
		return
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.ns != nil {
		_ = b.ns.Close()
	}
}

// demo is the demo server: an engine server alone, or one whose backend
// is a cluster node. Its handlers use the server's own API, which the
// backend makes cluster-wide.
type demo struct {
	srv  *engine.Server
	node *cluster.Node // the backend; nil without a bus
	name string        // --node
}

// build makes the server for router r with opts: with a node of b's
// cluster as its backend, or alone when b is nil.
func (d *demo) build(log *slog.Logger, r *handler.Router, b *bus, opts []engine.ServerOption) error {
	if b != nil {
		node, err := cluster.New(b.nc, b.number, cluster.WithLogger(log), cluster.WithCallTimeout(relayTimeout))
		if err != nil {
			return err
		}
		d.node = node
		opts = append(opts, engine.WithBackend(node))
	}
	var err error
	d.srv, err = engine.NewServer(r, opts...)
	return err
}

// startOn starts serving on lns; a node joins its cluster first.
func (d *demo) startOn(ctx context.Context, log *slog.Logger, lns ...net.Listener) error {
	if err := d.srv.StartOn(ctx, lns...); err != nil {
		if errors.Is(err, cluster.ErrNodeTaken) {
			return fmt.Errorf("%w: another live node has number %d (from --node %q): give another --node name, or --node-number",
				err, d.node.Number(), d.name)
		}
		return err
	}
	if d.node != nil {
		log.Info("joined the cluster", "node", d.name, "number", d.node.Number(), "epoch", d.node.Epoch())
	}
	return nil
}

// upgradable reports whether SIGHUP may start a successor: not for a node,
// whose successor would need its node number while it still holds it.
func (d *demo) upgradable() bool { return d.node == nil }

// sendAll sends the borrowed object obj to every connection, on every node.
func (d *demo) sendAll(op codec.Opcode, obj []byte) error {
	// SendAllRaw copies the object before it returns.
	if err := d.srv.SendAllRaw(op, obj); err != nil {
		return relayFailure(0, err)
	}
	return nil
}

// relayMsg is an opcode-2 frame.
type relayMsg struct {
	To   uint64          `json:"to" simplerpc:"required"`
	Data json.RawMessage `json:"data" simplerpc:"required"`
}

// Validate checks that data is an object.
func (m relayMsg) Validate() error {
	if _, err := codec.Object(m.Data); err != nil {
		return handler.ArgumentTypeError(`"data" must be a JSON object`)
	}
	return nil
}

// whoami is the answer on opcode 3.
type whoami struct {
	NetID uint64 `json:"net_id"`
	Node  string `json:"node"`
}

// failureMsg is a failure frame's object.
type failureMsg struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// addRouteOps registers opcodes 2 and 3 on r.
func (d *demo) addRouteOps(r *handler.Router) {
	handler.Handle(r, opRelay, func(c handler.Conn, m relayMsg) error {
		return d.relay(c, m)
	})
	handler.HandleCall(r, opWhoami, func(c handler.Conn, _ struct{}) (whoami, error) {
		return whoami{NetID: c.ID(), Node: d.name}, nil
	})
	// A plain frame on opcode 3 (simplerpc call without --request) is
	// answered with a frame.
	r.On(opWhoami, func(c handler.Conn, _ []byte) error {
		return c.Send(opWhoami, whoami{NetID: c.ID(), Node: d.name})
	})
}

// relay sends m.Data to net id m.To on opcode 2. A failure known at once is
// returned, and the router sends it to c; one another node reports later
// is sent to c as a failure frame then.
func (d *demo) relay(c handler.Conn, m relayMsg) error {
	if d.node == nil {
		if err := d.srv.Send(m.To, opRelay, m.Data); err != nil {
			return relayFailure(m.To, err)
		}
		return nil
	}
	// SendConfirm encodes the borrowed m.Data before it returns.
	err := d.node.SendConfirm(context.Background(), m.To, opRelay, m.Data, func(err error) {
		if err == nil {
			return
		}
		f := handler.Failure(relayFailure(m.To, err))
		_ = c.Send(codec.OpFailure, failureMsg{Reason: f.Reason, Message: f.Message})
	})
	if err != nil {
		return relayFailure(m.To, err)
	}
	return nil
}

// relayFailure is the failure a relay to net id to (0: a send to all) that
// failed with err answers, with a short message: the frame may be small.
func relayFailure(to uint64, err error) error {
	what := "to net id " + strconv.FormatUint(to, 10)
	if to == 0 {
		what = "to the other nodes"
	}
	switch {
	case errors.Is(err, engine.ErrUnknownConn) && errors.Is(err, cluster.ErrNodeDown):
		return &handler.Error{Reason: reasonUnknownConn, Message: "net id " + strconv.FormatUint(to, 10) + " is not connected: its node is down"}
	case errors.Is(err, engine.ErrUnknownConn):
		return &handler.Error{Reason: reasonUnknownConn, Message: "net id " + strconv.FormatUint(to, 10) + " is not connected"}
	case errors.Is(err, cluster.ErrBusDown):
		return &handler.Error{Reason: reasonRelayFailed, Message: what + ": the cluster's NATS is unreachable"}
	case errors.Is(err, cluster.ErrBusFull):
		return &handler.Error{Reason: reasonRelayFailed, Message: what + ": too much cross-node traffic pending"}
	case errors.Is(err, context.DeadlineExceeded):
		return &handler.Error{Reason: reasonRelayFailed, Message: what + ": its node did not answer in time"}
	}
	return &handler.Error{Reason: reasonRelayFailed, Message: what + ": " + err.Error()}
}
