// This file builds an in-memory TLS pair of layers, a client and a server
// on a self-signed certificate, and tests a record read across reads.

package tlslayer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// testCert returns a self-signed certificate for "example.com", made once.
var testCert = sync.OnceValues(func() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example.com"},
		DNSNames: []string{"example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
})

// side is one end of an in-memory TLS connection.
type side struct {
	l      *Layer
	out    []byte
	plain  []byte
	closed error
	woken  chan struct{}
	ready  bool
}

func newSideEnd(t testing.TB, server bool) *side {
	t.Helper()
	cert, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: !server, ServerName: "example.com"}
	sd := NewSide(cfg, server, 10*time.Second, 4, 0, errors.New("stopped"))
	t.Cleanup(func() { sd.Stop(); sd.Wait() })
	e := &side{woken: make(chan struct{}, 1)}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	e.l = sd.New(Env{
		Out: func(b []byte) error { e.out = append(e.out, b...); return nil },
		Wake: func() {
			select {
			case e.woken <- struct{}{}:
			default:
			}
		},
		Close: func(err error) { e.closed = err },
		Local: addr, Remote: addr,
	})
	if err := e.l.Start(); err != nil {
		t.Fatal(err)
	}
	return e
}

// feed hands e the bytes in; what e does not consume stays in *in.
func (e *side) feed(in *[]byte) error {
	plain, n, ready, err := e.l.Input(e.plain, *in)
	e.plain, e.ready = plain, ready
	*in = (*in)[n:]
	return err
}

// tlsPair returns a client and a server past the handshake.
func tlsPair(t testing.TB) (*side, *side) {
	t.Helper()
	c, s := newSideEnd(t, false), newSideEnd(t, true)
	deadline := time.After(10 * time.Second)
	for !c.ready || !s.ready {
		if err := s.feed(&c.out); err != nil {
			t.Fatalf("server: %v", err)
		}
		if err := c.feed(&s.out); err != nil {
			t.Fatalf("client: %v", err)
		}
		if c.ready && s.ready || len(c.out) > 0 || len(s.out) > 0 {
			continue // bytes to hand over first
		}
		// Each handshake goroutine wakes its loop when it has written or
		// finished: wait for either.
		select {
		case <-c.woken:
		case <-s.woken:
		case <-deadline:
			t.Fatal("handshake not over")
		}
	}
	return c, s
}

func TestPairEcho(t *testing.T) {
	c, s := tlsPair(t)
	if st, ok := s.l.ConnectionState(); !ok || !st.HandshakeComplete {
		t.Fatal("no state after the handshake")
	}
	wire, err := c.l.Output(nil, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	// Byte by byte: a record part way is pending, the whole one is read.
	for i := range wire {
		in := wire[i : i+1]
		if err := s.feed(&in); err != nil {
			t.Fatal(err)
		}
		if last := i == len(wire)-1; s.l.Pending() == last {
			t.Fatalf("after %d of %d bytes: pending %v", i+1, len(wire), s.l.Pending())
		}
	}
	if string(s.plain) != "hello" {
		t.Fatalf("read %q", s.plain)
	}
}
