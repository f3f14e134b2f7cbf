// Package service runs an engine.Server as a Linux service: what
// `simplerpc serve` does, as one call any server can make.
//
// [Run] serves until SIGTERM, SIGINT or the end of its context, and gives the
// server:
//
//   - its listeners: the sockets a service manager hands over (socket
//     activation: LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), or else
//     listeners it opens on the addresses of [WithAddrs] ("host:port",
//     tcp://, tcp4://, tcp6://, tls://, unix:///path, ws://host:port/path,
//     wss://host:port/path). A socket named "ws/PATH" or "wss/PATH"
//     (FileDescriptorName=ws/rpc in a socket unit) serves WebSocket at
//     PATH, plain or under the server's TLS; any other name serves the
//     protocol itself ([ListenerName]);
//   - the service manager's notifications (sd_notify, when NOTIFY_SOCKET is
//     set; nothing is sent otherwise): READY=1 once it accepts, STATUS=
//     every 5 s, WATCHDOG=1 every half of WatchdogSec= while every event
//     loop answers a round trip ([engine.Host.Backlog]) within a quarter
//     of it, and STOPPING=1 when it begins to shut down;
//   - a P beside its event loops: GOMAXPROCS raised to the server's loops
//     plus one when it is no higher and the environment does not set it
//     ([WithoutSpareP] leaves it);
//   - a graceful shutdown on SIGTERM or SIGINT within [WithShutdownGrace];
//   - on Unix, a live upgrade on SIGHUP: it starts its successor (the
//     binary now at its path, with its arguments) on the same listening
//     sockets and, with [Handover] (the default), a socket over which it
//     hands the successor its live connections ([engine.Server.HandOver],
//     [engine.Server.Adopt]), so that their peers see nothing; it waits for
//     the successor's READY=1, tells the service manager MAINPID=, and
//     returns. A successor that fails or is not ready within
//     [WithUpgradeTimeout] is killed, and this process goes on serving.
//
// The application's own per-connection state travels with each connection
// through [engine.WithHandover]: the successor, running the same code,
// restores it.
//
// A unit for such a service needs Type=notify, NotifyAccess=all (the
// successor speaks to the service manager too) and
// ExecReload=/bin/kill -HUP $MAINPID; see docs/OPERATIONS.md.
package service
