package embedded_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"go.uber.org/goleak"

	"github.com/simplerpc/simplerpc/cluster/embedded"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBothPaths(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := embedded.Start(ctx, embedded.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	in, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := nats.Connect(ns.URL(), nats.Token(ns.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sub, err := in.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := out.Publish("x", []byte("by URL")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsgWithContext(ctx)
	if err != nil || string(m.Data) != "by URL" {
		t.Fatalf("%v, %v", m, err)
	}
	if ns.Addr() == nil {
		t.Error("no address")
	}
}

func TestBadPort(t *testing.T) {
	if _, err := embedded.Start(context.Background(), embedded.WithPort(70000)); err == nil {
		t.Error("port 70000 accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := embedded.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	// A port in use: the server never gets ready.
	short, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	port := ns.Addr().(*net.TCPAddr).Port
	if _, err := embedded.Start(short, embedded.WithPort(port)); !errors.Is(err, embedded.ErrNotReady) {
		t.Errorf("a port in use: %v, want ErrNotReady", err)
	}
}

// TestCredentialsRequired checks that a client without the server's
// credentials is refused, by URL and in-process, whatever they are: a
// generated token, a given one, nkeys.
func TestCredentialsRequired(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	userPub, _ := user.PublicKey()
	stranger, _ := nkeys.CreateUser()
	strangerPub, _ := stranger.PublicKey()
	given := "a-token-given-by-the-operator"
	for _, tc := range []struct {
		name string
		opts []embedded.Option
		good nats.Option // what a client of another process presents
	}{
		{"generated token", nil, nil},
		{"given token", []embedded.Option{embedded.WithToken(given)}, nats.Token(given)},
		{"nkeys", []embedded.Option{embedded.WithNKeys(userPub)}, nats.Nkey(userPub, user.Sign)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := embedded.Start(ctx, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer ns.Close()
			good := tc.good
			if good == nil {
				if len(ns.Token()) != 43 {
					t.Fatalf("generated token %d characters, want 43", len(ns.Token()))
				}
				good = nats.Token(ns.Token())
			}
			if tc.name == "nkeys" && ns.Token() != "" {
				t.Error("a token with nkeys")
			}
			for _, bad := range []struct {
				what string
				opts []nats.Option
			}{
				{"nothing", nil},
				{"a wrong token", []nats.Option{nats.Token("guess")}},
				{"a user and password", []nats.Option{nats.UserInfo("simplerpc", "guess")}},
				{"another nkey", []nats.Option{nats.Nkey(strangerPub, stranger.Sign)}},
			} {
				nc, err := nats.Connect(ns.URL(), append(bad.opts, nats.NoReconnect())...)
				if err == nil {
					nc.Close()
					t.Errorf("a client with %s connected", bad.what)
				} else if !errors.Is(err, nats.ErrAuthorization) && !errors.Is(err, nats.ErrNkeysNotSupported) {
					t.Errorf("a client with %s: %v, want nats.ErrAuthorization", bad.what, err)
				}
			}
			nc, err := nats.Connect(ns.URL(), good)
			if err != nil {
				t.Fatalf("with the credentials: %v", err)
			}
			nc.Close()
			in, err := ns.Connect()
			if err != nil {
				t.Fatalf("in-process: %v", err)
			}
			in.Close()
		})
	}
}

func TestBadCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	for name, opts := range map[string][]embedded.Option{
		"token and nkeys":        {embedded.WithToken("t"), embedded.WithNKeys(pub)},
		"a seed for a key":       {embedded.WithNKeys(string(seed))},
		"a bcrypt-looking token": {embedded.WithToken("$2a$10$x")},
	} {
		if ns, err := embedded.Start(ctx, opts...); err == nil {
			_ = ns.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	a, err := embedded.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := embedded.NewToken()
	if a == b || len(a) != 43 {
		t.Errorf("tokens %q and %q", a, b)
	}
}

// TestTLS: with WithTLS, clients by URL must speak TLS and verify the
// server, and present a client certificate when the configuration asks for
// one; in-process connections do without.
func TestTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, serverCert, clientCert := testPKI(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ns, err := embedded.Start(ctx, embedded.WithTLS(&tls.Config{Certificates: []tls.Certificate{serverCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if !strings.HasPrefix(ns.URL(), "tls://") {
		t.Errorf("URL %s", ns.URL())
	}
	token := nats.Token(ns.Token())
	for what, opts := range map[string][]nats.Option{
		"no TLS":                {token},
		"no client certificate": {token, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})},
		"no token":              {nats.Secure(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12})},
		"an unverified server":  {token, nats.Secure(&tls.Config{Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12})},
	} {
		if nc, err := nats.Connect(ns.URL(), append(opts, nats.NoReconnect())...); err == nil {
			nc.Close()
			t.Errorf("a client with %s connected", what)
		}
	}
	nc, err := nats.Connect(ns.URL(), token,
		nats.Secure(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatalf("with TLS, its client certificate and the token: %v", err)
	}
	nc.Close()
	in, err := ns.Connect()
	if err != nil {
		t.Fatalf("in-process: %v", err)
	}
	in.Close()
	if _, err := embedded.Start(ctx, embedded.WithTLS(&tls.Config{})); err == nil {
		t.Error("WithTLS without a certificate accepted")
	}
}

// testPKI makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, in memory.
func testPKI(t *testing.T) (*x509.Certificate, tls.Certificate, tls.Certificate) {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	}
	return ca, leaf(2, x509.ExtKeyUsageServerAuth), leaf(3, x509.ExtKeyUsageClientAuth)
}
