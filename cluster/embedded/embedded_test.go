package embedded_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
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
