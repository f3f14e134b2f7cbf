package main

// This file holds the credentials of serve's cluster bus: their flags, the
// secrets read from files or the environment (never from a flag's value,
// which every user of the machine can read in the process list), the
// embedded NATS server's token or nkey, and nats.go's auth and TLS options
// for a NATS server at a URL.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/pflag"

	"github.com/simplerpc/simplerpc/cluster/embedded"
)

// Environment variables serve reads the cluster's secrets from.
const (
	envClusterToken = "SIMPLERPC_CLUSTER_TOKEN"
	envNATSPassword = "SIMPLERPC_NATS_PASSWORD"
)

// maxSecretFile bounds a token, password or seed file: a secret is short.
const maxSecretFile = 64 << 10

// credentialFlags names the ways to give NATS credentials, for errors.
const credentialFlags = "--cluster-token-file (or $" + envClusterToken + "), --nats-user with --nats-password-file (or $" +
	envNATSPassword + "), --nats-nkey-file or --nats-creds"

// natsAuth are serve's flags for the credentials and TLS of the cluster's
// NATS.
type natsAuth struct {
	tokenFile    string // --cluster-token-file
	user         string // --nats-user
	passwordFile string // --nats-password-file
	nkeyFile     string // --nats-nkey-file
	credsFile    string // --nats-creds
	tlsCA        string // --nats-tls-ca
	tlsCert      string // --nats-tls-cert
	tlsKey       string // --nats-tls-key
}

// addNATSAuthFlags adds the NATS credential and TLS flags to f.
func addNATSAuthFlags(f *pflag.FlagSet, a *natsAuth) {
	f.StringVar(&a.tokenFile, "cluster-token-file", "", "file holding the token of the cluster's NATS (else $"+envClusterToken+"). With --cluster embedded the embedded server requires it; a file that does not exist is created with a new random token (mode 0600) for the other nodes to read; with neither, the server makes a token that only this process knows")
	f.StringVar(&a.user, "nats-user", "", "user name for the NATS at --cluster URL; the password comes from --nats-password-file or $"+envNATSPassword)
	f.StringVar(&a.passwordFile, "nats-password-file", "", "file holding the password of --nats-user")
	f.StringVar(&a.nkeyFile, "nats-nkey-file", "", "file holding a user nkey seed (SU...): proves this node to the NATS at --cluster URL; with --cluster embedded, the key the embedded server accepts instead of a token")
	f.StringVar(&a.credsFile, "nats-creds", "", "NATS credentials file (a user JWT and its nkey seed, as nsc makes them) for the NATS at --cluster URL")
	f.StringVar(&a.tlsCA, "nats-tls-ca", "", "PEM file of CA certificates: with --cluster URL, those that verify the NATS server (connects with TLS); with --cluster embedded, those that verify the other nodes' client certificates (required then)")
	f.StringVar(&a.tlsCert, "nats-tls-cert", "", "PEM certificate file (with --nats-tls-key): with --cluster URL, this node's client certificate; with --cluster embedded, the embedded NATS server's, which then speaks TLS only")
	f.StringVar(&a.tlsKey, "nats-tls-key", "", "PEM file of the key of --nats-tls-cert")
	_ = cobraFileFlag(f, "cluster-token-file", "nats-password-file", "nats-nkey-file", "nats-creds", "nats-tls-ca", "nats-tls-cert", "nats-tls-key")
}

// given returns the first of the flags that is set, or "".
func (a *natsAuth) given() string {
	for _, f := range []struct{ name, v string }{
		{"--cluster-token-file", a.tokenFile}, {"--nats-user", a.user}, {"--nats-password-file", a.passwordFile},
		{"--nats-nkey-file", a.nkeyFile}, {"--nats-creds", a.credsFile}, {"--nats-tls-ca", a.tlsCA},
		{"--nats-tls-cert", a.tlsCert}, {"--nats-tls-key", a.tlsKey},
	} {
		if f.v != "" {
			return f.name
		}
	}
	return ""
}

// checkEmbedded validates the flags for --cluster embedded.
func (a *natsAuth) checkEmbedded() error {
	for _, f := range []struct{ name, v string }{
		{"--nats-user", a.user}, {"--nats-password-file", a.passwordFile}, {"--nats-creds", a.credsFile},
	} {
		if f.v != "" {
			return usagef("%s applies to a NATS at a URL, not to --cluster embedded (which takes --cluster-token-file or --nats-nkey-file)", f.name)
		}
	}
	switch {
	case a.tokenFile != "" && a.nkeyFile != "":
		return usagef("--cluster-token-file and --nats-nkey-file: the embedded NATS server takes one")
	case (a.tlsCert == "") != (a.tlsKey == ""):
		return usagef("--nats-tls-cert and --nats-tls-key go together")
	case a.tlsCA != "" && a.tlsCert == "":
		return usagef("--nats-tls-ca with --cluster embedded needs the server's --nats-tls-cert and --nats-tls-key")
	}
	return nil
}

// checkURL validates the flags for a NATS at a URL.
func (a *natsAuth) checkURL() error {
	kinds := 0
	for _, v := range []string{a.tokenFile, a.user, a.nkeyFile, a.credsFile} {
		if v != "" {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return usagef("give one of --cluster-token-file, --nats-user, --nats-nkey-file and --nats-creds")
	case a.passwordFile != "" && a.user == "":
		return usagef("--nats-password-file needs --nats-user")
	case a.user != "" && a.passwordFile == "" && os.Getenv(envNATSPassword) == "":
		return usagef("--nats-user needs its password: --nats-password-file, or $%s", envNATSPassword)
	case (a.tlsCert == "") != (a.tlsKey == ""):
		return usagef("--nats-tls-cert and --nats-tls-key go together")
	}
	return nil
}

// embeddedOptions returns the embedded server's credentials and TLS, and
// log attributes saying what they are (never the secret).
func (a *natsAuth) embeddedOptions(log *slog.Logger) ([]embedded.Option, []any, error) {
	opts, attrs, err := a.embeddedCredentials(log)
	if err != nil || a.tlsCert == "" {
		return opts, append(attrs, "tls", "off"), err
	}
	pair, err := tls.LoadX509KeyPair(a.tlsCert, a.tlsKey)
	if err != nil {
		return nil, nil, fmt.Errorf("serve: --nats-tls-cert %s / --nats-tls-key %s: %w", a.tlsCert, a.tlsKey, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	mode := "on"
	if a.tlsCA != "" {
		if cfg.ClientCAs, err = loadCAs("--nats-tls-ca", a.tlsCA); err != nil {
			return nil, nil, err
		}
		cfg.ClientAuth, mode = tls.RequireAndVerifyClientCert, "mutual"
	}
	return append(opts, embedded.WithTLS(cfg)), append(attrs, "tls", mode), nil
}

// embeddedCredentials returns the embedded server's credentials.
func (a *natsAuth) embeddedCredentials(log *slog.Logger) ([]embedded.Option, []any, error) {
	switch {
	case a.nkeyFile != "":
		seed, err := readFile(a.nkeyFile, "--nats-nkey-file")
		if err != nil {
			return nil, nil, err
		}
		kp, err := nkeys.ParseDecoratedNKey(seed) // a bare seed, or as nsc decorates it
		clear(seed)
		if err != nil {
			return nil, nil, fmt.Errorf("serve: --nats-nkey-file %s: not an nkey seed: %w", a.nkeyFile, err)
		}
		pub, err := kp.PublicKey()
		kp.Wipe()
		if err != nil || !nkeys.IsValidPublicUserKey(pub) {
			return nil, nil, fmt.Errorf("serve: --nats-nkey-file %s: want a user's seed (SU...)", a.nkeyFile)
		}
		return []embedded.Option{embedded.WithNKeys(pub)}, []any{"auth", "nkey", "nkey", pub}, nil
	case a.tokenFile != "":
		token, created, err := tokenFromFile(a.tokenFile)
		if err != nil {
			return nil, nil, err
		}
		if created {
			log.Info("wrote a new cluster token", "file", a.tokenFile)
		}
		return []embedded.Option{embedded.WithToken(token)}, []any{"auth", "token", "token_from", a.tokenFile}, nil
	case envToken() != "":
		return []embedded.Option{embedded.WithToken(envToken())},
			[]any{"auth", "token", "token_from", "$" + envClusterToken}, nil
	}
	log.Info("the embedded NATS server's token is generated and known to this process only: other processes join with --cluster-token-file or $" + envClusterToken)
	return nil, []any{"auth", "token", "token_from", "generated"}, nil
}

// urlOptions returns nats.go's options for the credentials and TLS given.
func (a *natsAuth) urlOptions() (opts []nats.Option, err error) {
	switch {
	case a.tokenFile != "":
		token, err := readSecret(a.tokenFile, "--cluster-token-file")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Token(token))
	case a.user != "":
		password := os.Getenv(envNATSPassword)
		if a.passwordFile != "" {
			if password, err = readSecret(a.passwordFile, "--nats-password-file"); err != nil {
				return nil, err
			}
		}
		opts = append(opts, nats.UserInfo(a.user, password))
	case a.nkeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.nkeyFile)
		if err != nil {
			return nil, fmt.Errorf("serve: --nats-nkey-file %s: %w", a.nkeyFile, err)
		}
		opts = append(opts, opt)
	case a.credsFile != "":
		if _, err := os.Stat(a.credsFile); err != nil {
			return nil, fmt.Errorf("serve: --nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.credsFile))
	case envToken() != "":
		opts = append(opts, nats.Token(envToken()))
	}
	if a.tlsCA != "" {
		opts = append(opts, nats.RootCAs(a.tlsCA))
	}
	if a.tlsCert != "" {
		opts = append(opts, nats.ClientCert(a.tlsCert, a.tlsKey))
	}
	return opts, nil
}

// envToken returns $SIMPLERPC_CLUSTER_TOKEN without surrounding blanks;
// "" when unset or blank.
func envToken() string { return strings.TrimSpace(os.Getenv(envClusterToken)) }

// readSecret reads a secret from a file: its first line, without its
// surrounding blanks, as --auth-token-file does. Its errors name the file,
// never what it holds.
func readSecret(path, flag string) (string, error) {
	b, err := readFile(path, flag)
	if err != nil {
		return "", err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	s := strings.TrimSpace(string(line))
	clear(b)
	if s == "" {
		return "", fmt.Errorf("serve: %s %s: the first line is empty", flag, path)
	}
	return s, nil
}

// readFile reads a small file of secrets, at most maxSecretFile bytes.
func readFile(path, flag string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", flag, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("serve: %s: %w", flag, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("serve: %s %s: larger than %d bytes, not a secret", flag, path, maxSecretFile)
	}
	return b, nil
}

// tokenFromFile reads the token in path, or, when there is no such file,
// creates it, readable by its owner only, with a new token.
func tokenFromFile(path string) (token string, created bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		token, err = readSecret(path, "--cluster-token-file")
		return token, false, err
	}
	if err != nil {
		return "", false, fmt.Errorf("serve: --cluster-token-file: %w", err)
	}
	if token, err = embedded.NewToken(); err == nil {
		_, err = f.WriteString(token + "\n")
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("serve: --cluster-token-file %s: write a new token: %w", path, err)
	}
	return token, true, nil
}
