package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/internal/testkit"
)

// testPKI is testkit's test CA as PEM files: a server certificate for
// 127.0.0.1 and localhost, a client certificate, and a file that is no
// certificate.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey, garbage string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	p := testPKI{
		ca:         ca.File("ca.pem"),
		serverCert: ca.File("server.pem"), serverKey: ca.File("server.key"),
		clientCert: ca.File("client-1.pem"), clientKey: ca.File("client-1.key"),
		garbage: ca.File("garbage.pem"),
	}
	if err := os.WriteFile(p.garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTLS checks serve --tls-cert with call, listen and bench over TLS.
func TestTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	p, addr := startServe(t, "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey)
	if !strings.Contains(p.stderr.String(), "tls=on") {
		t.Errorf("the listening line does not say tls=on:\n%s", p.stderr.String())
	}
	echo := `{"opcode":0,"data":{"a":1}}` + "\n"
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // stdout, exactly, for code 0
		err  string // in stderr
	}{
		{"tls-ca", []string{"--addr", addr, "--tls", "--tls-ca", pki.ca}, 0, echo, ""},
		{"tls:// address", []string{"--addr", "tls://" + addr, "--tls-ca", pki.ca}, 0, echo, ""},
		{"insecure", []string{"--addr", addr, "--insecure"}, 0, echo, ""},
		{"request", []string{"--addr", "tls://" + addr, "--tls-ca", pki.ca, "--request"}, 0, `{"opcode":0,"reply":{"a":1}}` + "\n", ""},
		{"unknown CA", []string{"--addr", "tls://" + addr, "--timeout", "30s"}, 1, "", "certificate"}, // the handshake fails long before on any machine
		{"plain TCP to TLS", []string{"--addr", addr, "--timeout", "2s"}, 1, "", ""},
		{"bad CA file", []string{"--addr", addr, "--tls-ca", pki.garbage}, 2, "", "--tls-ca " + pki.garbage + ": no PEM certificate"},
		{"missing CA file", []string{"--addr", addr, "--tls-ca", pki.garbage + ".none"}, 2, "", "--tls-ca: open"},
	} {
		t.Run("call "+tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, time.Minute, append(append([]string{"call"}, tc.args...), "0", `{"a":1}`)...)
			r.wantCode(t, tc.code)
			if tc.code == 0 && r.stdout != tc.out {
				t.Errorf("stdout %q, want %q", r.stdout, tc.out)
			}
			if !strings.Contains(r.stderr, tc.err) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.err)
			}
		})
	}
	t.Run("listen", func(t *testing.T) {
		t.Parallel()
		r := runBin(t, 20*time.Second, "listen", "--addr", "tls://"+addr, "--tls-ca", pki.ca, "--all", "--count", "1")
		r.wantCode(t, 0)
		if !strings.Contains(r.stdout, `"opcode":-2`) {
			t.Errorf("listen printed %q, want the -2 frame", r.stdout)
		}
	})
	t.Run("bench", func(t *testing.T) {
		t.Parallel()
		r := runBin(t, 60*time.Second, "bench", "--addr", "tls://"+addr, "--tls-ca", pki.ca, "--conns", "2", "--duration", "300ms", "--json")
		r.wantCode(t, 0)
		if !strings.Contains(r.stdout, `"errors":0`) {
			t.Errorf("bench over TLS: %s\nstderr:\n%s", r.stdout, r.stderr)
		}
	})
}

// TestTLSMutual checks --tls-client-ca: a client without a certificate
// is refused, one with a certificate of the CA gets through.
func TestTLSMutual(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	p, addr := startServe(t, "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.ca)
	if !strings.Contains(p.stderr.String(), "tls=mutual") {
		t.Errorf("the listening line does not say tls=mutual:\n%s", p.stderr.String())
	}
	r := runBin(t, 20*time.Second, "call", "--addr", "tls://"+addr, "--tls-ca", pki.ca, "--timeout", "5s", "0", `{}`)
	r.wantCode(t, 1)
	r = runBin(t, 20*time.Second, "call", "--addr", "tls://"+addr, "--tls-ca", pki.ca,
		"--tls-cert", pki.clientCert, "--tls-key", pki.clientKey, "0", `{}`)
	r.wantCode(t, 0)
	if want := `{"opcode":0,"data":{}}` + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
}

// TestServeTLSErrors checks that bad certificate flags exit 2 before
// serve listens.
func TestServeTLSErrors(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"missing cert", []string{"--tls-cert", pki.garbage + ".none", "--tls-key", pki.serverKey}, "--tls-cert " + pki.garbage + ".none / --tls-key"},
		{"garbage cert", []string{"--tls-cert", pki.garbage, "--tls-key", pki.serverKey}, "failed to find any PEM data in certificate input"},
		{"key of another cert", []string{"--tls-cert", pki.serverCert, "--tls-key", pki.clientKey}, "private key does not match public key"},
		{"cert without key", []string{"--tls-cert", pki.serverCert}, "--tls-cert needs --tls-key"},
		{"key without cert", []string{"--tls-key", pki.serverKey}, "--tls-key needs --tls-cert"},
		{"garbage client CA", []string{"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.garbage}, "--tls-client-ca " + pki.garbage + ": no PEM certificate"},
		{"client CA alone", []string{"--tls-client-ca", pki.ca}, "--tls-client-ca needs --tls-cert and --tls-key"},
		{"tls:// without cert", []string{"--addr", "tls://127.0.0.1:0"}, `--addr "tls://127.0.0.1:0" asks for TLS: give --tls-cert and --tls-key`},
		{"handshake timeout", []string{"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-handshake-timeout", "0s"}, "--tls-handshake-timeout 0s must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runBin(t, 20*time.Second, append([]string{"serve", "--addr", "127.0.0.1:0"}, tc.args...)...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
			if strings.Contains(r.stderr, "listening") {
				t.Errorf("serve listened:\n%s", r.stderr)
			}
		})
	}
}
