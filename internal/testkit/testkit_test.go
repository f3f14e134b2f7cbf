package testkit_test

import (
	"crypto/tls"
	"net"
	"testing"

	"github.com/simplerpc/simplerpc/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyTestMain(m) }

// TestPeer has two peers on a pipe exchange a -2 frame and a frame, then
// one closes: Greet learns the size, Read and ReadText strip the padding,
// ExpectEOF sees the close, and Frames ends with the error.
func TestPeer(t *testing.T) {
	a, b := net.Pipe()
	pa, pb := testkit.NewPeer(t, a), testkit.NewPeer(t, b)
	pa.Size = 32
	done := make(chan struct{})
	go func() {
		defer close(done)
		pa.Write(`-2{"message_size": 32}`)
		pa.Write(`7{"x":1}`)
		pa.Conn.Close()
	}()
	pb.Greet(32)
	if got := pb.ReadText(); got != `7{"x":1}` {
		t.Errorf("ReadText: %q", got)
	}
	pb.ExpectEOF()
	<-done
	if got := string(testkit.Pad("0{}", 6)); got != "0{}   " {
		t.Errorf("Pad: %q", got)
	}
	if got := string(testkit.Pad("0{}", 2)); got != "0{}" {
		t.Errorf("Pad of a longer text: %q", got)
	}
	if _, _, err := testkit.ReadFrame(nil, 0); err == nil {
		t.Error("ReadFrame of an empty frame: no error")
	}
}

// TestCA has a client with the CA's client certificate complete a mutual
// handshake with a server of the CA's server certificate, as localhost and
// as 127.0.0.1, and one without a certificate refused.
func TestCA(t *testing.T) {
	ca := testkit.NewCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan string, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				accepted <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			} else {
				accepted <- ""
			}
			c.Close()
		}
	}()
	ctx := testkit.Context(t, testkit.Timeout)
	for _, name := range []string{"localhost", "127.0.0.1"} {
		cfg := ca.ClientConfig(true)
		cfg.ServerName = name
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cn := testkit.Recv(ctx, t, accepted, "the handshake"); cn != "client-1" {
			t.Errorf("%s: the server saw CN %q", name, cn)
		}
		c.Close()
	}
	cfg := ca.ClientConfig(false)
	cfg.ServerName = "localhost"
	if c, err := tls.Dial("tcp", ln.Addr().String(), cfg); err == nil {
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal comes after the client's flight
		c.Close()
		if err == nil {
			t.Error("a client without a certificate was served")
		}
	}
	if cn := testkit.Recv(ctx, t, accepted, "the refusal"); cn != "" {
		t.Errorf("the server accepted CN %q without a certificate", cn)
	}
}
