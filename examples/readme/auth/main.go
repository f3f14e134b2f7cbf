// Command auth is README.md's "Authentication": a server that requires a
// token and a client that logs in with one (examples/readme/readme_test.go
// checks README.md shows this file as it is).
package main

import (
	"context"
	"crypto/subtle"
	"log"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The server: every connection must send {"token": ...} first (-9),
	// within 5 s; the identity returned stays with the connection.
	check := func(ctx context.Context, c handler.Conn, creds []byte) (string, error) {
		var m struct{ Token string }
		if err := codec.Unmarshal(creds, &m); err != nil || subtle.ConstantTimeCompare([]byte(m.Token), []byte("s3cret")) != 1 {
			return "", handler.ArgumentValueError("unknown token") // the peer gets this reason and text
		}
		return "alice", nil
	}
	srv, err := engine.NewServer(handler.NewRouter(), engine.WithAuth(check, 5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(ctx, "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	// The client: Dial returns once the server has acknowledged the
	// credentials, or returns why not (engine.ErrUnauthorized).
	cl, err := engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(),
		engine.WithCredentials(map[string]string{"token": "s3cret"}))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	log.Printf("logged in as %s", engine.IdentityOf(cl.Conn()))

	_, err = engine.Dial(ctx, srv.Addr().String(), handler.NewRouter(),
		engine.WithCredentials(map[string]string{"token": "guess"}))
	log.Printf("a wrong token: %v", err)
}
