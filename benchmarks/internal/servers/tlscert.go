package servers

// This file makes the TLS configurations of the TLS servers and of the
// load generators: a self-signed ECDSA P-256 certificate generated at start,
// never a key on disk.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// ServerTLS returns a server configuration with a fresh self-signed ECDSA
// P-256 certificate for 127.0.0.1 and localhost, and crypto/tls's defaults
// for everything else (TLS 1.3 with Go peers, session tickets on).
func ServerTLS() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("servers: TLS key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "simplerpc benchmarks"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("servers: TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, nil
}

// ClientTLS returns the load generators' configuration: the server's
// certificate chain is not verified (another process generated it; the
// handshake's signature is still checked), and there is no session cache,
// so every connection makes a full handshake.
func ClientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // benchmarks on loopback
}
