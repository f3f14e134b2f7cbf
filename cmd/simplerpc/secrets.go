// The auth token's sources (a flag, a file, the environment) and the
// process's arguments kept free of it, so that nothing served shows it.
package main

import (
	"bytes"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// envAuthToken is the environment variable serve, call, listen and bench
// take the token from when neither --auth-token nor --auth-token-file is
// given.
const envAuthToken = "SIMPLERPC_AUTH_TOKEN"

// maxTokenFile bounds what --auth-token-file reads.
const maxTokenFile = 64 << 10

// tokenSource is where a command's auth token comes from: --auth-token,
// --auth-token-file, or $SIMPLERPC_AUTH_TOKEN, in that order.
type tokenSource struct {
	flag string // --auth-token
	file string // --auth-token-file
}

// addTokenFlags adds --auth-token and --auth-token-file to f; what says
// what the token does.
func addTokenFlags(f *pflag.FlagSet, t *tokenSource, what string) {
	f.StringVar(&t.flag, "auth-token", "", what+" (other local users can see a command line: "+
		"prefer --auth-token-file or $"+envAuthToken+")")
	f.StringVar(&t.file, "auth-token-file", "", "read the auth token from this file (its first line; trailing white space is dropped)")
	_ = cobraFileFlag(f, "auth-token-file")
}

// token returns the token, or "" when no source gives one. A file that
// cannot be read or holds no token, or both flags at once, is a usage
// error.
func (t tokenSource) token() (string, error) {
	switch {
	case t.flag != "" && t.file != "":
		return "", usagef("--auth-token and --auth-token-file exclude each other")
	case t.flag != "":
		return t.flag, nil
	case t.file != "":
		return readTokenFile(t.file)
	}
	return os.Getenv(envAuthToken), nil
}

// readTokenFile reads the token of --auth-token-file: its first line.
func readTokenFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", usagef("--auth-token-file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", usagef("--auth-token-file: %v", err)
	}
	if len(b) > maxTokenFile {
		return "", usagef("--auth-token-file %s: larger than %d bytes", name, maxTokenFile)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	tok := strings.TrimSpace(string(line))
	if tok == "" {
		return "", usagef("--auth-token-file %s: the first line holds no token", name)
	}
	return tok, nil
}

// hideAuthToken returns args without --auth-token and its value, and the
// value (found reports whether there was one). main gives the process the
// returned arguments and the token through $SIMPLERPC_AUTH_TOKEN instead,
// so that /debug/pprof/cmdline and a successor started on SIGHUP (which
// inherits the environment) never carry it on a command line. Arguments
// after "--" are not flags and are kept.
func hideAuthToken(args []string) (kept []string, token string, found bool) {
	kept = make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(kept, args[i:]...), token, found
		case a == "--auth-token" && i+1 < len(args):
			token, found = args[i+1], true
			i++
			continue
		case strings.HasPrefix(a, "--auth-token="):
			token, found = strings.TrimPrefix(a, "--auth-token="), true
			continue
		}
		kept = append(kept, a)
	}
	return kept, token, found
}
