// This file pins that a TLS connection's loop yields to the handshake's
// goroutine: starting a handshake, and handing it the peer's flight, mark
// the loop's round as having woken a goroutine (loop.leave then yields
// before the loop sleeps).

package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/internal/tlslayer"
)

// selfSignedConfig returns a server config with a fresh self-signed
// ECDSA certificate.
func selfSignedConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestTLSHandshakeWakesLoop(t *testing.T) {
	t.Parallel()
	ts := tlslayer.NewSide(selfSignedConfig(t), true, 10*time.Second, 8, 0, ErrShutdown)
	defer ts.Wait()
	defer ts.Stop()
	l := &loop{}
	c := &conn{loop: l, side: &side{}}
	c.extra() // no owner: neither a server's nor a client's
	w := &tlsConn{t: &tlsSide{side: ts}, c: c}
	defer func() { _ = w.stop(nil) }()
	woken := make(chan struct{}, 16)
	if err := w.start(func([]byte) error { return nil }, func() { woken <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if !l.woke {
		t.Error("starting the handshake's goroutine did not mark the round as having woken one")
	}

	// The client's first flight, as a peer sends it.
	cli, srv := net.Pipe()
	defer cli.Close()
	defer srv.Close()
	go func() {
		_ = tls.Client(cli, &tls.Config{InsecureSkipVerify: true}).Handshake() // ends when the pipe closes
	}()
	_ = srv.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	n, err := srv.Read(buf)
	if err != nil {
		t.Fatal(err)
	}

	l.woke = false
	_, used, ready, err := w.input(nil, buf[:n])
	if err != nil || ready || used != n {
		t.Fatalf("input of the ClientHello: used %d of %d, ready %v, err %v", used, n, ready, err)
	}
	if !l.woke {
		t.Error("handing the peer's flight to the handshake did not mark the round as having woken its goroutine")
	}
	l.woke = false
	if _, used, _, _ := w.input(nil, nil); used != 0 || l.woke {
		t.Errorf("input of no bytes: used %d, marked the round as having woken a goroutine %v; want 0, false", used, l.woke)
	}
	select {
	case <-woken: // the server's flight is ready: the handshake ran
	case <-time.After(30 * time.Second):
		t.Fatal("the handshake never woke the loop with its flight")
	}
}
