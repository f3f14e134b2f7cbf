package engine_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/engine"
	"github.com/simplerpc/simplerpc/handler"
)

// python3 is required: CI has it, and a missing interpreter must fail the
// compatibility tests rather than skip them.
func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required for the compatibility tests: %v", err)
	}
	return p
}

// TestPythonClientAgainstGoServer runs the original-style Python client
// (testdata/pypeer.py) against our server: -2 first, golden frames byte for
// byte, every bad-input row answered with the connection still in step,
// the failure frame, and size changes both ways.
func TestPythonClientAgainstGoServer(t *testing.T) {
	py := python(t)
	for _, tc := range []struct {
		name  string
		size  int
		loops int
	}{
		{"size256", 256, 1},
		{"size1024", 1024, 1},
		{"size256-multicore", 256, 2},
		{"size256-workers", 256, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The peer doubles the size (step e): a server allows a peer a
			// size past its own only when told to.
			opts := []engine.ServerOption{engine.WithMessageSize(tc.size), engine.WithEventLoops(tc.loops),
				engine.WithSizeBounds(codec.MinMessageSize, 64<<10)}
			if strings.HasSuffix(tc.name, "workers") {
				opts = append(opts, engine.WithWorkerPool(4, 64))
			}
			srv := startServer(t, echoRouter(), opts...)
			ctx := testContext(t)
			out, err := exec.CommandContext(ctx, py, "testdata/pypeer.py", "client",
				"--addr", srv.Addr().String(), "--size", fmt.Sprint(tc.size)).CombinedOutput()
			if err != nil {
				t.Fatalf("pypeer client: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "ok client") {
				t.Fatalf("pypeer client output: %s", out)
			}
		})
	}
}

// pyServer starts pypeer.py in server mode and returns its address.
func pyServer(t *testing.T, args ...string) (addr string, wait func() string) {
	t.Helper()
	port, wait := startPyServer(t, "testdata/pypeer.py", append([]string{"server"}, args...)...)
	return "127.0.0.1:" + port, wait
}

// startPyServer starts a Python test server that prints "PORT N" first,
// and returns N and a function that waits for it to exit and returns the
// rest of what it printed (the test fails if it exits with an error).
func startPyServer(t *testing.T, script string, args ...string) (port string, wait func() string) {
	t.Helper()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, python(t), append([]string{script}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "PORT ") {
		_ = cmd.Wait()
		t.Fatalf("%s did not start: %q %s", script, sc.Text(), stderr.String())
	}
	return strings.TrimPrefix(sc.Text(), "PORT "), func() string {
		var rest strings.Builder
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("%s: %v\n%s%s", script, err, rest.String(), stderr.String())
		}
		return rest.String()
	}
}

// TestGoClientAgainstPythonServer runs our client against a server that
// behaves like the original: the client learns the size from the first
// frame with no configuration, gets opcode 1, has its opcode 0 echoed in the
// original's form, gets opcode 5's failure through its -1 callback,
// and the protocol extensions it sends (a call, a ping) are ignored by the
// original without disturbing the stream.
func TestGoClientAgainstPythonServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		size int
	}{
		{"size256", []string{"--size", "256"}, 256},
		{"size1024", []string{"--size", "1024"}, 1024},
		{"server-changes-size", []string{"--size", "256", "--size-change", "512"}, 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, wait := pyServer(t, tc.args...)
			ctx := testContext(t)
			got := newRecorder()
			failures := make(chan *handler.Error, 4)
			r := handler.NewRouter()
			r.Forward(func(c handler.Conn, op codec.Opcode, data []byte) error {
				got.add(fmt.Sprintf("%d%s", op, data))
				return nil
			})
			handler.Handle(r, codec.OpFailure, func(_ handler.Conn, f *handler.Error) error { failures <- f; return nil })
			cl, err := engine.Dial(ctx, addr, r)
			if err != nil {
				t.Fatal(err)
			}
			// Sent at once: held until the size is known.
			if err := cl.Send(0, map[string]any{"some_data": 123}); err != nil {
				t.Fatal(err)
			}
			frames := got.wait(t, 2)
			if frames[0] != `1{"some_data": "this is sent to whoever just connected"}` {
				t.Errorf("first frame %q", frames[0])
			}
			if frames[1] != `0{"some_data": 123}` {
				t.Errorf("echo %q", frames[1])
			}
			if err := cl.Send(5, map[string]any{}); err != nil {
				t.Fatal(err)
			}
			select {
			case f := <-failures:
				if f.Reason != "ArgumentMissing" || f.Message != "Expected argument 'argname' in opcode 5" {
					t.Errorf("failure %+v", f)
				}
			case <-ctx.Done():
				t.Fatal("no failure frame")
			}
			// Extensions the original does not know: a call (it never
			// replies) and a ping. The peer must stay in step.
			cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err = cl.Call(cctx, 3, map[string]any{"q": 1}, nil)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("call to the original: %v, want a deadline error", err)
			}
			if err := cl.Send(9, map[string]any{}); err != nil {
				t.Fatal(err)
			}
			frames = got.wait(t, 3)
			want := `9{"received": [[0, {"some_data": 123}], [5, {}], [-3, {"id": 1, "op": 3, "data": {"q": 1}}], [9, {}]]}`
			record := frames[2]
			if tc.size == 512 {
				// Our client answered the server's size change once (§3),
				// before or after the held frame.
				const answer = `[-2, {"message_size": 512}], `
				if strings.Count(record, answer) != 1 {
					t.Errorf("want one -2 answer in %q", record)
				}
				record = strings.Replace(record, answer, "", 1)
			}
			if cl.MessageSize() != tc.size {
				t.Errorf("message size %d, want %d", cl.MessageSize(), tc.size)
			}
			if record != want {
				t.Errorf("peer's record: %q", frames[2])
			}
			if err := cl.Close(); err != nil {
				t.Fatal(err)
			}
			<-cl.Done()
			if out := wait(); !strings.Contains(out, "ok server") {
				t.Errorf("pypeer server output: %q", out)
			}
		})
	}
}
