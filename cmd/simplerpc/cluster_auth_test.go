package main

// This file tests the credentials of serve's cluster bus: the embedded
// NATS server refuses whoever lacks its token or nkey, the token reaches
// the other nodes by a file or the environment and never a log, and a
// node joins a NATS at a URL with a user, a password and mutual TLS.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func TestServeClusterAuthErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"token file alone", []string{"--cluster-token-file", empty}, 2, "--cluster-token-file needs --cluster"},
		{"user with embedded", []string{"--cluster", "embedded", "--node", "a", "--nats-user", "u"}, 2, "--nats-user applies to a NATS at a URL"},
		{"token and nkey with embedded", []string{"--cluster", "embedded", "--node", "a", "--cluster-token-file", empty, "--nats-nkey-file", empty}, 2, "the embedded NATS server takes one"},
		{"two credentials", []string{"--cluster", "nats://127.0.0.1:4222", "--node", "a", "--cluster-token-file", empty, "--nats-creds", empty}, 2, "give one of"},
		{"password without user", []string{"--cluster", "nats://127.0.0.1:4222", "--node", "a", "--nats-password-file", empty}, 2, "--nats-password-file needs --nats-user"},
		{"user without password", []string{"--cluster", "nats://127.0.0.1:4222", "--node", "a", "--nats-user", "u"}, 2, "--nats-user needs its password"},
		{"cert without key", []string{"--cluster", "nats://127.0.0.1:4222", "--node", "a", "--nats-tls-cert", empty}, 2, "go together"},
		{"embedded: cert without key", []string{"--cluster", "embedded", "--node", "a", "--nats-tls-cert", empty}, 2, "go together"},
		{"embedded: a CA without a certificate", []string{"--cluster", "embedded", "--node", "a", "--nats-tls-ca", empty}, 2, "needs the server's --nats-tls-cert"},
		{"embedded: a bad certificate", []string{"--cluster", "embedded", "--node", "a", "--nats-tls-cert", empty, "--nats-tls-key", empty}, 1, "--nats-tls-cert"},
		{"empty token file", []string{"--cluster", "embedded", "--node", "a", "--cluster-token-file", empty}, 1, "the first line is empty"},
		{"a token file in no directory", []string{"--cluster", "embedded", "--node", "a", "--cluster-token-file", filepath.Join(dir, "no", "token")}, 1, "--cluster-token-file"},
		{"not a seed", []string{"--cluster", "embedded", "--node", "a", "--nats-nkey-file", empty}, 1, "--nats-nkey-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, testWait, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
			r.wantCode(t, tc.code)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
		})
	}
}

// TestServeClusterToken: serve --cluster embedded makes a token file the
// other nodes read, or takes the token from the environment; whoever lacks
// it is refused (a raw NATS client, as the attacker of issue 28 used, and
// a node); the token shows in no log.
func TestServeClusterToken(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "token")
	first, w1 := startNode(t, "--cluster", "embedded", "--node", "one", "--cluster-token-file", file)
	url := w1.wait(t, 0, reLine(`msg="embedded NATS listening" url=(\S+) auth=token token_from=`))[1]
	w1.wait(t, 0, reLine(`msg="wrote a new cluster token" file=`))
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	token, err := readSecret(file, "")
	if err != nil || len(token) != 43 {
		t.Fatalf("token file: %d characters, %v", len(token), err)
	}

	// Refused without the token.
	for _, opts := range [][]nats.Option{nil, {nats.Token(token + "x")}} {
		nc, err := nats.Connect(url, append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Fatal("a NATS client without the token connected")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("a NATS client without the token: %v, want nats.ErrAuthorization", err)
		}
	}
	r := runBin(t, testWait, "serve", "--addr", "127.0.0.1:0", "--cluster", url, "--node", "stranger")
	r.wantCode(t, 1)
	if want := "Authorization Violation (give the cluster's credentials: --cluster-token-file"; !strings.Contains(r.stderr, want) {
		t.Errorf("a node without the token: stderr %q does not contain %q", r.stderr, want)
	}

	// Joined with the token from the environment.
	second, w2 := startNodeEnv(t, []string{envClusterToken + "=" + token}, "--cluster", url, "--node", "two")
	w1.wait(t, 0, nodeUpRE(w2.number(t)))
	ctx := ctxWithin(t, testWait)
	a, b := dialDemo(t, ctx, first.addr), dialDemo(t, ctx, second.addr)
	a.relay(t, b.id, `{"via":"token"}`)
	b.wantFrame(t, ctx, opRelay, `{"via":"token"}`)
	for _, n := range []*node{second, first} {
		n.stop(t)
	}
	for _, n := range []*node{first, second} {
		if strings.Contains(n.stderr.String(), token) {
			t.Errorf("the token is in the log:\n%s", n.stderr.String())
		}
	}
}

// TestServeClusterNKey: the embedded server takes a user nkey instead of a
// token; a node by URL proves it holds the seed.
func TestServeClusterNKey(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	file := filepath.Join(t.TempDir(), "seed")
	if err := os.WriteFile(file, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	first, w1 := startNode(t, "--cluster", "embedded", "--node", "one", "--nats-nkey-file", file)
	url := w1.wait(t, 0, reLine(`msg="embedded NATS listening" url=(\S+) auth=nkey nkey=`+pub))[1]
	if nc, err := nats.Connect(url, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a NATS client without the nkey connected")
	}
	second, w2 := startNode(t, "--cluster", url, "--node", "two", "--nats-nkey-file", file)
	w1.wait(t, 0, nodeUpRE(w2.number(t)))
	ctx := ctxWithin(t, testWait)
	a, b := dialDemo(t, ctx, first.addr), dialDemo(t, ctx, second.addr)
	a.relay(t, b.id, `{"via":"nkey"}`) // one knows two: from one to two
	b.wantFrame(t, ctx, opRelay, `{"via":"nkey"}`)
	for _, n := range []*node{second, first} {
		n.stop(t)
		if strings.Contains(n.stderr.String(), string(seed)) {
			t.Errorf("the seed is in the log:\n%s", n.stderr.String())
		}
	}
}

// TestServeClusterEmbeddedTLS: with --nats-tls-cert, --nats-tls-key and
// --nats-tls-ca, the embedded NATS server speaks TLS only and requires
// client certificates of that CA, as well as its token.
func TestServeClusterEmbeddedTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	token := filepath.Join(t.TempDir(), "token")
	first, w1 := startNode(t, "--cluster", "embedded", "--node", "one", "--cluster-token-file", token,
		"--nats-tls-cert", pki.serverCert, "--nats-tls-key", pki.serverKey, "--nats-tls-ca", pki.ca)
	url := w1.wait(t, 0, reLine(`msg="embedded NATS listening" url=(tls://\S+) auth=token .* tls=mutual`))[1]
	secret, err := readSecret(token, "")
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(strings.Replace(url, "tls://", "nats://", 1), nats.Token(secret), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a NATS client without TLS connected")
	}
	r := runBin(t, testWait, "serve", "--addr", "127.0.0.1:0", "--cluster", url, "--node", "nocert", "--cluster-token-file", token,
		"--nats-tls-ca", pki.ca)
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "connect to NATS at "+url) {
		t.Errorf("a node without a client certificate: %q", r.stderr)
	}
	second, w2 := startNode(t, "--cluster", url, "--node", "two", "--cluster-token-file", token,
		"--nats-tls-ca", pki.ca, "--nats-tls-cert", pki.clientCert, "--nats-tls-key", pki.clientKey)
	w1.wait(t, 0, nodeUpRE(w2.number(t)))
	ctx := ctxWithin(t, testWait)
	a, b := dialDemo(t, ctx, first.addr), dialDemo(t, ctx, second.addr)
	a.relay(t, b.id, `{"via":"tls"}`) // one knows two: from one to two
	b.wantFrame(t, ctx, opRelay, `{"via":"tls"}`)
}

// TestServeClusterURLAuth: nodes join a NATS at a URL that requires a user
// and password and mutual TLS; a wrong password, or no client certificate,
// is refused. A NATS without authentication is joined with a warning.
func TestServeClusterURLAuth(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.serverCert, pki.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ns := startTestNATS(t, &server.Options{
		Users:     []*server.User{{Username: "simplerpc", Password: "correct horse"}},
		TLS:       true,
		TLSVerify: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	})
	url := fmt.Sprintf("tls://127.0.0.1:%d", ns.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, wrong := write("password", "correct horse\n"), write("wrong", "battery staple")
	tlsArgs := []string{"--nats-tls-ca", pki.ca, "--nats-tls-cert", pki.clientCert, "--nats-tls-key", pki.clientKey}
	join := func(name string, more ...string) []string {
		return append([]string{"--cluster", url, "--node", name, "--nats-user", "simplerpc"}, more...)
	}

	first, w1 := startNode(t, append(join("one", "--nats-password-file", good), tlsArgs...)...)
	second, w2 := startNodeEnv(t, []string{envNATSPassword + "=correct horse"}, append(join("two"), tlsArgs...)...)
	w1.wait(t, 0, nodeUpRE(w2.number(t)))
	w2.wait(t, 0, nodeUpRE(w1.number(t)))
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"a wrong password", append(join("wrong", "--nats-password-file", wrong), tlsArgs...), "Authorization Violation"},
		{"no client certificate", join("nocert", "--nats-password-file", good, "--nats-tls-ca", pki.ca), "connect to NATS at " + url},
		{"no CA", join("noca", "--nats-password-file", good, "--nats-tls-cert", pki.clientCert, "--nats-tls-key", pki.clientKey), "certificate"},
	} {
		r := runBin(t, testWait, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
		r.wantCode(t, 1)
		if !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: stderr %q does not contain %q", tc.name, r.stderr, tc.msg)
		}
	}
	for _, n := range []*node{second, first} {
		n.stop(t)
		if strings.Contains(n.stderr.String(), "correct horse") {
			t.Errorf("the password is in the log:\n%s", n.stderr.String())
		}
	}

	// A NATS that asks for nothing: joined, with a warning, with or
	// without credentials.
	open := startTestNATS(t, &server.Options{})
	openURL := fmt.Sprintf("nats://127.0.0.1:%d", open.Addr().(*net.TCPAddr).Port)
	_, w := startNode(t, "--cluster", openURL, "--node", "lone")
	_, wp := startNode(t, "--cluster", openURL, "--node", "lone2", "--nats-user", "simplerpc", "--nats-password-file", good)
	for _, w := range []*logWatch{w, wp} {
		w.wait(t, 0, reLine(`level=WARN msg="the NATS server requires no authentication`))
	}
	if strings.Contains(w1.p.stderr.String(), "requires no authentication") {
		t.Error("a node of a NATS that requires authentication warns that it does not")
	}
	// The test's cleanup kills it: a SIGINT this soon after "listening"
	// can meet a race of serve's (its signal and its server's end, both
	// ready at once, make it exit 1), which is not this test's subject.
}

// startTestNATS runs a NATS server in the test process, on a free
// loopback port, with opts.
func startTestNATS(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(testWait) {
		t.Fatal("the test's NATS server is not ready")
	}
	return ns
}
