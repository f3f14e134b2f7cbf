// This file makes a test certificate authority for each test: no key is
// ever committed.

package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a test certificate authority with a server certificate (for
// 127.0.0.1 and localhost, CN server) and a client certificate (CN
// client-1) it signed, valid from an hour ago for a day. Dir holds them as
// PEM files, for openssl, Python and the command-line tool: ca.pem,
// server.pem and server.key, client-1.pem and client-1.key. Its fields are
// not to be changed; it is then safe for concurrent use by multiple
// goroutines (each config it returns is a new one).
type CA struct {
	Pool   *x509.CertPool // holds the CA's certificate
	Server tls.Certificate
	Client tls.Certificate
	Dir    string
}

// NewCA makes a CA in a temporary directory of the test.
func NewCA(t testing.TB) *CA {
	t.Helper()
	caKey := newKey(t)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "simplerpc test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c := &CA{Pool: x509.NewCertPool(), Dir: t.TempDir()}
	c.Pool.AddCert(ca)
	writePEM(t, c.File("ca.pem"), "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, c.File(name+".pem"), "CERTIFICATE", der)
		writePEM(t, c.File(name+".key"), "PRIVATE KEY", keyDER)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	c.Server = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	c.Client = leaf("client-1", 3, x509.ExtKeyUsageClientAuth)
	return c
}

// File returns the path of one of the CA's PEM files.
func (c *CA) File(name string) string { return filepath.Join(c.Dir, name) }

// ServerConfig returns a server's TLS config with the server certificate;
// mutual asks for a client certificate and verifies it against the CA.
func (c *CA) ServerConfig(mutual bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.Server}}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = c.Pool
	}
	return cfg
}

// ClientConfig returns a client's TLS config that trusts the CA, with the
// client certificate if withCert; ServerName is left to the caller.
func (c *CA) ClientConfig(withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: c.Pool}
	if withCert {
		cfg.Certificates = []tls.Certificate{c.Client}
	}
	return cfg
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
