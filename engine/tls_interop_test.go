// Tests of TLS against other implementations (openssl s_client, Python's
// ssl) and of an idle TLS connection's memory.

package engine_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// TestTLSOpenSSLClient runs `openssl s_client` against our server, with and
// without a client certificate: it reads the -2 frame, sends a frame,
// reads its echo and ends with close_notify.
func TestTLSOpenSSLClient(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is required for this test (Debian: apt-get install -y openssl): %v", err)
	}
	p := newPKI(t)
	r := echoRouter()
	r.On(7, func(c handler.Conn, _ []byte) error {
		st, _ := engine.TLSState(c)
		cn := ""
		if len(st.PeerCertificates) > 0 {
			cn = st.PeerCertificates[0].Subject.CommonName
		}
		return c.Send(0, map[string]any{"cn": cn})
	})
	cfg := p.serverConfig(false)
	cfg.ClientAuth, cfg.ClientCAs = tls.VerifyClientCertIfGiven, p.pool
	rs := newReasons()
	srv := startTLSServer(t, r, cfg, rs.option())
	for _, withCert := range []bool{false, true} {
		t.Run(fmt.Sprintf("cert=%v", withCert), func(t *testing.T) {
			ctx := testContext(t)
			args := []string{"s_client", "-connect", srv.Addr().String(), "-CAfile", p.file("ca.pem"),
				"-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet", "-no_ign_eof"}
			want := `{"cn":""}`
			if withCert {
				args = append(args, "-cert", p.file("client-1.pem"), "-key", p.file("client-1.key"))
				want = `{"cn":"client-1"}`
			}
			cmd := exec.CommandContext(ctx, bin, args...)
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			frame := func() string {
				buf := make([]byte, 1024)
				if _, err := io.ReadFull(stdout, buf); err != nil {
					t.Fatalf("read from openssl: %v\n%s", err, stderr.String())
				}
				return strings.TrimRight(string(buf), " ")
			}
			pad := func(s string) []byte { return []byte(s + strings.Repeat(" ", 1024-len(s))) }
			if f := frame(); f != `-2{"message_size":1024}` {
				t.Fatalf("first frame %q", f)
			}
			stdin.Write(pad(`0{"from":"openssl"}`))
			if f := frame(); f != `0{"from":"openssl"}` {
				t.Errorf("echo %q", f)
			}
			stdin.Write(pad(`7{}`))
			if f := frame(); f != "0"+want {
				t.Errorf("peer certificate seen by the handler: %q", f)
			}
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("openssl: %v\n%s", err, stderr.String())
			}
		})
	}
}

// TestTLSPythonClient runs Python's ssl module (OpenSSL underneath) as a
// client of our server: -2 first, echoes, a failure frame, close_notify
// both ways; then again with a client certificate the server requires.
func TestTLSPythonClient(t *testing.T) {
	py := python(t)
	p := newPKI(t)
	for _, mutual := range []bool{false, true} {
		t.Run(fmt.Sprintf("mutual=%v", mutual), func(t *testing.T) {
			rs := newReasons()
			srv := startTLSServer(t, echoRouter(), p.serverConfig(mutual), engine.WithMessageSize(256), rs.option())
			ctx := testContext(t)
			args := []string{"testdata/pytls.py", "client", "--addr", srv.Addr().String(), "--size", "256",
				"--ca", p.file("ca.pem")}
			if mutual {
				args = append(args, "--cert", p.file("client-1.pem"), "--key", p.file("client-1.key"))
			}
			out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ok client") {
				t.Fatalf("pytls client: %v\n%s", err, out)
			}
			for rs.count() == 0 {
				select {
				case <-rs.notify:
				case <-ctx.Done():
					t.Fatal("no disconnect")
				}
			}
			rs.mu.Lock()
			defer rs.mu.Unlock()
			for _, err := range rs.by {
				if !errors.Is(err, io.EOF) {
					t.Errorf("reason: %v, want the peer's close_notify", err)
				}
			}
		})
	}
}

// TestTLSGoClientAgainstPythonServer runs our TLS client against a Python
// ssl server that speaks like the original: -2 first, then opcode 1,
// echoes of opcode 0, a failure for opcode 5.
func TestTLSGoClientAgainstPythonServer(t *testing.T) {
	p := newPKI(t)
	ctx := testContext(t)
	port, wait := startPyServer(t, "testdata/pytls.py", "server", "--size", "256",
		"--cert", p.file("server.pem"), "--key", p.file("server.key"))
	addr := "tls://127.0.0.1:" + port

	got := newRecorder()
	failures := make(chan *handler.Error, 1)
	r := handler.NewRouter()
	r.Forward(func(_ handler.Conn, op codec.Opcode, data []byte) error {
		got.add(fmt.Sprintf("%d%s", op, data))
		return nil
	})
	handler.Handle(r, codec.OpFailure, func(_ handler.Conn, f *handler.Error) error { failures <- f; return nil })
	cl, err := engine.Dial(ctx, addr, r, engine.WithTLS(p.clientConfig(false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(0, map[string]any{"some_data": 123}); err != nil {
		t.Fatal(err)
	}
	frames := got.wait(t, 2)
	if frames[0] != `1{"some_data": "this is sent to whoever just connected"}` || frames[1] != `0{"some_data": 123}` {
		t.Errorf("frames %q", frames)
	}
	if err := cl.Send(5, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-failures:
		if f.Reason != "ArgumentMissing" {
			t.Errorf("failure %+v", f)
		}
	case <-ctx.Done():
		t.Fatal("no failure frame")
	}
	if st, ok := engine.TLSState(cl.Conn()); !ok || st.PeerCertificates[0].Subject.CommonName != "server" {
		t.Errorf("TLS state %v %+v", ok, st)
	}
	cl.Close()
	<-cl.Done()
	if rest := wait(); !strings.Contains(rest, "ok server") {
		t.Errorf("pytls server: %s", rest)
	}
}

// TestTLSIdleHoldsNoBuffer: a TLS connection that has exchanged frames and
// gone idle holds no plaintext buffer of its own (its loop lends one while
// records are decoded): 10,000 idle TLS connections held 16 KiB each
// before.
func TestTLSIdleHoldsNoBuffer(t *testing.T) {
	p := newPKI(t)
	conns := make(chan handler.Conn, 1)
	srv := startTLSServer(t, echoRouter(), p.serverConfig(false), engine.WithOnConnect(func(c handler.Conn) { conns <- c }))
	ctx := testContext(t)
	got := make(chan struct{}, 16)
	cr := handler.NewRouter()
	cr.On(1, func(handler.Conn, []byte) error { got <- struct{}{}; return nil })
	cl, err := engine.Dial(ctx, srv.Addr().String(), cr, engine.WithTLS(p.clientConfig(false)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); <-cl.Done() }()
	sc := waitFor(ctx, t, conns, "the connection")
	for i := range 10 {
		if err := cl.Send(1, map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, got, "the echo")
	}
	if n := engine.LayerBuffers(sc); n != 0 {
		t.Fatalf("the idle TLS connection holds a %d-byte plaintext buffer", n)
	}
}
