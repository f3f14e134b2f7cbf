package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/simplerpc/simplerpc/engine"
)

// The engine's TLS defaults (engine.WithHandshakeTimeout,
// engine.WithMaxHandshakes).
const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultMaxHandshakes    = 1024
)

// serverTLSOptions are serve's TLS flags.
type serverTLSOptions struct {
	cert, key, clientCA string
	handshakeTimeout    time.Duration
	maxHandshakes       int
}

func addServerTLSFlags(f *pflag.FlagSet, o *serverTLSOptions) {
	f.StringVar(&o.cert, "tls-cert", "", "serve TLS with this PEM certificate chain (needs --tls-key); tls:// addresses need it")
	f.StringVar(&o.key, "tls-key", "", "the PEM private key of --tls-cert")
	f.StringVar(&o.clientCA, "tls-client-ca", "", "require client certificates signed by a CA in this PEM file (mutual TLS)")
	f.DurationVar(&o.handshakeTimeout, "tls-handshake-timeout", defaultHandshakeTimeout, "close a connection whose TLS handshake is not over within this time")
	f.IntVar(&o.maxHandshakes, "max-handshakes", defaultMaxHandshakes, "TLS handshakes in progress at once; connections past it are closed")
	_ = cobraFileFlag(f, "tls-cert", "tls-key", "tls-client-ca")
}

// enabled reports whether serve runs TLS.
func (o *serverTLSOptions) enabled() bool { return o.cert != "" || o.key != "" }

// serverOptions loads the certificate files and returns the engine's TLS
// options, or nil without --tls-cert. A file that cannot be read or
// parsed is a usage error naming the flag: it stops serve before it
// listens.
func (o *serverTLSOptions) serverOptions(addr string) ([]engine.ServerOption, error) {
	if !o.enabled() {
		switch {
		case o.clientCA != "":
			return nil, usagef("--tls-client-ca needs --tls-cert and --tls-key")
		case isTLSAddr(addr):
			return nil, usagef("--addr %q asks for TLS: give --tls-cert and --tls-key", addr)
		}
		return nil, nil
	}
	switch {
	case o.cert == "":
		return nil, usagef("--tls-key needs --tls-cert")
	case o.key == "":
		return nil, usagef("--tls-cert needs --tls-key")
	case o.handshakeTimeout <= 0:
		return nil, usagef("--tls-handshake-timeout %v must be positive", o.handshakeTimeout)
	case o.maxHandshakes < 1:
		return nil, usagef("--max-handshakes %d must be at least 1", o.maxHandshakes)
	}
	pair, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return nil, usagef("--tls-cert %s / --tls-key %s: %v", o.cert, o.key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if o.clientCA != "" {
		pool, err := loadCAs("--tls-client-ca", o.clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return []engine.ServerOption{
		engine.WithTLS(cfg),
		engine.WithHandshakeTimeout(o.handshakeTimeout),
		engine.WithMaxHandshakes(o.maxHandshakes),
	}, nil
}

// loadCAs reads a PEM file of CA certificates for the flag name.
func loadCAs(name, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("%s: %v", name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("%s %s: no PEM certificate in the file", name, file)
	}
	return pool, nil
}

// clientTLSOptions are the TLS flags of call, listen and bench.
type clientTLSOptions struct {
	on         bool
	ca         string
	insecure   bool
	serverName string
	clientCert string
	clientKey  string
	authToken  tokenSource // not TLS, but sent first on the same connections
}

func addClientTLSFlags(f *pflag.FlagSet, o *clientTLSOptions) {
	f.BoolVar(&o.on, "tls", false, "connect with TLS (implied by a tls:// address or another --tls-* flag)")
	f.StringVar(&o.ca, "tls-ca", "", "verify the server against the CAs in this PEM file instead of the system's roots")
	f.BoolVar(&o.insecure, "insecure", false, "do not verify the server's certificate (tests only)")
	f.StringVar(&o.serverName, "tls-server-name", "", "the name to verify the server's certificate against (default: the host of --addr)")
	f.StringVar(&o.clientCert, "tls-cert", "", "present this PEM client certificate (mutual TLS; needs --tls-key)")
	f.StringVar(&o.clientKey, "tls-key", "", "the PEM private key of --tls-cert")
	addTokenFlags(f, &o.authToken, `send {"token": TOKEN} as credentials first, for a server started with a token`)
	_ = cobraFileFlag(f, "tls-ca", "tls-cert", "tls-key")
}

// clientOptions returns the engine's TLS option for a client of addr, or
// nil for plain TCP, and the credentials of the auth token (tokenSource).
func (o *clientTLSOptions) clientOptions(addr string) ([]engine.ClientOption, error) {
	opts, err := o.tlsOptions(addr)
	if err != nil {
		return nil, err
	}
	token, err := o.authToken.token()
	if err != nil {
		return nil, err
	}
	if token != "" {
		opts = append(opts, engine.WithCredentials(map[string]string{"token": token}))
	}
	return opts, nil
}

// tlsOptions returns the engine's TLS option for a client of addr, or nil
// for plain TCP.
func (o *clientTLSOptions) tlsOptions(addr string) ([]engine.ClientOption, error) {
	if !o.on && !isTLSAddr(addr) && o.ca == "" && !o.insecure && o.serverName == "" && o.clientCert == "" && o.clientKey == "" {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: o.serverName, InsecureSkipVerify: o.insecure, MinVersion: tls.VersionTLS12}
	if o.ca != "" {
		pool, err := loadCAs("--tls-ca", o.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (o.clientCert == "") != (o.clientKey == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	if o.clientCert != "" {
		pair, err := tls.LoadX509KeyPair(o.clientCert, o.clientKey)
		if err != nil {
			return nil, usagef("--tls-cert %s / --tls-key %s: %v", o.clientCert, o.clientKey, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if strings.HasPrefix(addr, "unix://") && cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		return nil, usagef("TLS over %s needs --tls-server-name (or --insecure)", addr)
	}
	return []engine.ClientOption{engine.WithTLS(cfg)}, nil
}

// isTLSAddr reports whether addr says tls://.
func isTLSAddr(addr string) bool {
	return strings.HasPrefix(addr, "tls://") || strings.HasPrefix(addr, "wss://")
}

// describe is the listening log's "tls" value.
func (o *serverTLSOptions) describe() string {
	switch {
	case !o.enabled():
		return "off"
	case o.clientCA != "":
		return "mutual"
	}
	return "on"
}

// cobraFileFlag marks flags as taking file names, for shell completion.
func cobraFileFlag(f *pflag.FlagSet, names ...string) error {
	for _, n := range names {
		if err := f.SetAnnotation(n, cobra.BashCompFilenameExt, []string{}); err != nil {
			return err
		}
	}
	return nil
}
