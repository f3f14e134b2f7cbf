// This file tests the WebSocket client against servers of the test's own
// that answer the upgrade wrongly, not at all, or send control frames and
// fragments.

package engine_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// acceptKey is the Sec-WebSocket-Accept of key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// badServer answers every connection with what answer writes, after it
// has read the request.
func badServer(t *testing.T, answer func(c net.Conn, key string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				buf := make([]byte, 4096)
				n := 0
				for !strings.Contains(string(buf[:n]), "\r\n\r\n") {
					k, err := c.Read(buf[n:])
					if err != nil {
						return
					}
					n += k
				}
				key := ""
				for line := range strings.SplitSeq(string(buf[:n]), "\r\n") {
					if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Sec-WebSocket-Key") {
						key = strings.TrimSpace(v)
					}
				}
				answer(c, key)
			}()
		}
	}()
	return "ws://" + ln.Addr().String() + "/rpc"
}

// TestWebSocketClientBadUpgrades: a server that answers the upgrade wrongly
// makes Dial fail with ErrWebSocketHandshake and a reason that says what
// was wrong, never a hang; a right answer split over many packets works.
func TestWebSocketClientBadUpgrades(t *testing.T) {
	t.Parallel()
	ok101 := func(key string) string {
		return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\nSec-WebSocket-Protocol: simplerpc\r\n\r\n"
	}
	sizeMsg := "\x81\x16" + `-2{"message_size":256}`
	for _, tc := range []struct {
		name   string
		answer func(c net.Conn, key string)
		want   string // in the error; "" for a good answer
	}{
		{"bad accept key", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(strings.Replace(ok101(key), acceptKey(key), acceptKey("x"+key), 1)))
		}, "Sec-WebSocket-Accept"},
		{"400", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
		}, "400 Bad Request"},
		{"200", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"))
		}, "200 OK"},
		{"no upgrade header", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(strings.Replace(ok101(key), "Upgrade: websocket\r\n", "", 1)))
		}, "Upgrade: websocket"},
		{"other subprotocol", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(strings.Replace(ok101(key), "simplerpc", "chat", 1)))
		}, "subprotocol"},
		{"garbage", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("\x16\x03\x01garbage, not HTTP\r\n\r\n"))
		}, "not an HTTP response"},
		{"endless header", func(c net.Conn, _ string) {
			_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n" + strings.Repeat("X-Pad: yes\r\n", 1000)))
			_, _ = c.Read(make([]byte, 1)) // until the client gives up
		}, "over 8192 bytes"},
		{"close before the answer", func(net.Conn, string) {}, "unexpected EOF"},
		{"masked frame from the server", func(c net.Conn, key string) {
			_, _ = c.Write([]byte(ok101(key) + "\x81\x82abcd" + "xx"))
			_, _ = c.Read(make([]byte, 64))
		}, ""},
		{"split over many packets", func(c net.Conn, key string) {
			b := []byte(ok101(key) + sizeMsg)
			for i := range b {
				if _, err := c.Write(b[i : i+1]); err != nil {
					return
				}
				if tcp, ok := c.(*net.TCPConn); ok {
					_ = tcp.SetNoDelay(true)
				}
			}
			_, _ = c.Read(make([]byte, 1)) // until the client closes
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := badServer(t, tc.answer)
			ctx := testContext(t)
			cl, err := engine.Dial(ctx, addr, handler.NewRouter(), engine.WithDialNoWait())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer cl.Close()
				if tc.name == "masked frame from the server" {
					waitFor(ctx, t, cl.Done(), "the close")
					if !errors.Is(cl.Err(), engine.ErrWebSocket) || !strings.Contains(cl.Err().Error(), "masked server frame") {
						t.Fatalf("reason %v", cl.Err())
					}
					return
				}
				waitFor(ctx, t, cl.Ready(), "the -2 frame")
				if cl.MessageSize() != 256 {
					t.Fatalf("size %d", cl.MessageSize())
				}
				return
			}
			if err == nil {
				cl.Close()
				t.Fatal("dial succeeded")
			}
			if !errors.Is(err, engine.ErrWebSocketHandshake) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("dial: %v, want ErrWebSocketHandshake with %q", err, tc.want)
			}
		})
	}
}

// TestWebSocketClientSilentServer: a server that never answers the upgrade
// fails the dial at the handshake timeout, and meanwhile the dialer's
// event loop serves another client, over WebSocket too.
func TestWebSocketClientSilentServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	silent := badServer(t, func(c net.Conn, _ string) {
		_, _ = c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\n")) // and no more
		_, _ = c.Read(make([]byte, 1))
	})
	sr, cr := callRouters()
	srv := startServerOn(t, "ws://127.0.0.1:0/rpc", sr)
	d, err := engine.NewDialer(cr, engine.WithHandshakeTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	failed := make(chan error, 1)
	go func() {
		_, err := d.Dial(ctx, silent)
		failed <- err
	}()
	cl, err := d.Dial(ctx, "ws://"+srv.Addr().String()+"/rpc")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ N int }
	if err := cl.Call(ctx, 3, struct{ N int }{4}, &resp); err != nil || resp.N != 8 {
		t.Fatalf("call beside a silent server: %v %d", err, resp.N)
	}
	err = <-failed
	if !errors.Is(err, engine.ErrWebSocketHandshake) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial of a silent server: %v", err)
	}
}

// readClientFrame reads one small frame a client sent, which must be
// masked, and returns its first byte and unmasked payload.
func readClientFrame(c net.Conn) (byte, []byte, error) {
	var h [6]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 || h[1]&0x7f > 125 {
		return 0, nil, fmt.Errorf("header %x: not a masked small frame", h[:2])
	}
	p := make([]byte, h[1]&0x7f)
	if _, err := io.ReadFull(c, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= h[2+i%4]
	}
	return h[0], p, nil
}

// TestWebSocketClientControlFrames: the client puts a fragmented -2
// message together around a ping, answers the ping with a masked pong, and
// answers the server's close with the same code, masked, then closes with
// it as the reason.
func TestWebSocketClientControlFrames(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	addr := badServer(t, func(c net.Conn, key string) {
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"
		first, rest := `-2{"message_`, `size":256}`
		msg := resp + "\x01" + string(rune(len(first))) + first + "\x89\x02hi" + "\x80" + string(rune(len(rest))) + rest
		if _, err := c.Write([]byte(msg)); err != nil {
			return
		}
		for _, want := range []byte{0x8a, 0x88} {
			b0, p, err := readClientFrame(c)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- fmt.Sprintf("%x %q", b0, p)
			if want == 0x8a {
				_, _ = c.Write([]byte("\x88\x05\x0f\xa1bye")) // close 4001 "bye"
			}
		}
	})
	ctx := testContext(t)
	cl, err := engine.Dial(ctx, addr, handler.NewRouter())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitFor(ctx, t, cl.Ready(), "the -2 frame")
	if cl.MessageSize() != 256 {
		t.Fatalf("size %d", cl.MessageSize())
	}
	if pong := <-got; pong != `8a "hi"` {
		t.Fatalf("pong: %s", pong)
	}
	if closing := <-got; closing != `88 "\x0f\xa1"` {
		t.Fatalf("close: %s", closing)
	}
	waitFor(ctx, t, cl.Done(), "the close")
	if err := cl.Err(); !errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "(4001)") {
		t.Fatalf("reason %v", err)
	}
}
