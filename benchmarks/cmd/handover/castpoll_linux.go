// This file holds the peers' reader on Linux: one goroutine per worker
// that waits on epoll for all its peers and reads each once per wake-up,
// in place of a goroutine per peer. At 2,000 peers and 200 sends to all a
// second, the goroutines' reads cost the workers most of their core: a
// park, a wake-up and a read that finds nothing after each read that
// finds something, and a buffer allocated per WebSocket frame (issue 30).

package main

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/simplerpc/simplerpc/internal/wslayer"
)

// errNoPoll is newPollReader's error where there is no epoll
// (castpoll_other.go); it is never returned here.
var errNoPoll = errors.New("no epoll")

// pollReader reads the peers of one worker on an epoll set of its own.
type pollReader struct {
	epfd  int
	peers []*castPeer
	fds   []int
	part  [][]byte // each peer's bytes not yet a whole frame
	size  int
	codec wslayer.Codec
}

// newPollReader takes the peers' sockets out of Go's poller (a copy of
// each, the net.Conn closed) onto an epoll set of its own. The peers keep
// their net.Conn for its address only.
func newPollReader(peers []*castPeer, size int) (*pollReader, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	r := &pollReader{epfd: epfd, peers: peers, fds: make([]int, len(peers)), part: make([][]byte, len(peers)), size: size}
	for i, p := range peers {
		fd, err := detach(p.nc)
		if err != nil {
			r.close()
			return nil, err
		}
		r.fds[i] = fd
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)} // level-triggered: one read per wake-up
		if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			r.close()
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	return r, nil
}

// detach returns a copy of nc's socket, non-blocking, and closes nc.
func detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if cerr := rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) }); cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	_ = nc.Close()
	syscall.CloseOnExec(fd)
	return fd, syscall.SetNonblock(fd, true)
}

// run reads until stopping is set, looking at it every 50 ms.
func (r *pollReader) run(stopping *atomic.Bool) {
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, 256<<10)
	for !stopping.Load() {
		n, err := syscall.EpollWait(r.epfd, events, 50)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			for _, p := range r.peers {
				if p.err == nil {
					p.err = fmt.Errorf("epoll_wait: %w", err)
				}
			}
			return
		}
		now := time.Now()
		for _, ev := range events[:n] {
			r.readPeer(int(ev.Fd), buf, now)
		}
	}
}

// readPeer reads what peer i has, once, and checks the whole frames.
func (r *pollReader) readPeer(i int, buf []byte, now time.Time) {
	p := r.peers[i]
	n, err := syscall.Read(r.fds[i], buf)
	switch {
	case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR):
		return
	case err != nil || n == 0:
		if err == nil {
			err = errors.New("EOF")
		}
		p.err = err
		r.drop(i)
		return
	}
	b := buf[:n]
	if len(r.part[i]) > 0 {
		r.part[i] = append(r.part[i], b...)
		b = r.part[i]
	}
	k, err := r.frames(p, b, now)
	if err != nil {
		p.err = err
		r.drop(i)
		return
	}
	r.part[i] = append(r.part[i][:0], b[k:]...)
}

// frames checks the whole frames at the start of b and returns the bytes
// they took.
func (r *pollReader) frames(p *castPeer, b []byte, now time.Time) (int, error) {
	k := 0
	for {
		if !p.isWS {
			if len(b)-k < r.size {
				return k, nil
			}
			p.saw(b[k:k+r.size], now)
			k += r.size
			continue
		}
		h, payload, n, err := r.codec.ParseFrame(b[k:])
		if errors.Is(err, wslayer.ErrShort) {
			return k, nil
		}
		if err != nil {
			return k, err
		}
		k += n
		if h.OpCode != ws.OpText || !h.Fin {
			p.stranger(fmt.Sprintf("a WebSocket frame of opcode %d, fin %v: %.40q", h.OpCode, h.Fin, payload))
			if h.OpCode == ws.OpClose {
				return k, errors.New("a WebSocket close frame")
			}
			continue
		}
		p.saw(payload, now)
	}
}

// drop stops reading peer i.
func (r *pollReader) drop(i int) {
	_ = syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, r.fds[i], nil)
}

// close closes the sockets and the epoll set.
func (r *pollReader) close() {
	for _, fd := range r.fds {
		if fd > 0 {
			_ = syscall.Close(fd)
		}
	}
	_ = syscall.Close(r.epfd)
}
