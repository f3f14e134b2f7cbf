package main

import (
	"encoding/json"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

var listenReadyRE = reLine(`^listening to \S+ \(message size (\d+)\)$`)

// listenLines decodes listen's output.
func listenLines(t *testing.T, out string) []frameLine {
	t.Helper()
	var lines []frameLine
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var f frameLine
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, f.Time); err != nil {
			t.Errorf("line %q: time: %v", l, err)
		}
		lines = append(lines, f)
	}
	return lines
}

func TestListenCount(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	l := startBin(t, "listen", "--addr", addr, "--count", "2")
	if m := l.waitLine(t, listenReadyRE, 20*time.Second); m[1] != "256" {
		t.Errorf("message size %s, want 256", m[1])
	}
	for _, obj := range []string{`{"n":1}`, `{"n":2}`} {
		runBin(t, 20*time.Second, "call", "--addr", addr, "1", obj).wantCode(t, 0)
	}
	if code := l.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("listen exited %d\nstderr:\n%s", code, l.stderr.String())
	}
	lines := listenLines(t, l.stdout.String())
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), l.stdout.String())
	}
	for i, f := range lines {
		want := `{"n":` + string(rune('1'+i)) + `}`
		if f.Opcode != 1 || string(f.Data) != want {
			t.Errorf("line %d: opcode %d data %s, want opcode 1 data %s", i, f.Opcode, f.Data, want)
		}
	}
}

func TestListenAll(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	l := startBin(t, "listen", "--addr", addr, "--all", "--count", "2")
	l.waitLine(t, listenReadyRE, 20*time.Second)
	runBin(t, 20*time.Second, "call", "--addr", addr, "1", `{"x":true}`).wantCode(t, 0)
	if code := l.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("listen exited %d\nstderr:\n%s", code, l.stderr.String())
	}
	lines := listenLines(t, l.stdout.String())
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), l.stdout.String())
	}
	if lines[0].Opcode != -2 || string(lines[0].Data) != `{"message_size":256}` {
		t.Errorf("first line %+v, want the -2 message size frame", lines[0])
	}
	if lines[1].Opcode != 1 || string(lines[1].Data) != `{"x":true}` {
		t.Errorf("second line %+v, want the broadcast", lines[1])
	}
}

func TestListenInterrupt(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	l := startBin(t, "listen", "--addr", addr)
	l.waitLine(t, listenReadyRE, 20*time.Second)
	l.interrupt(t)
	if code := l.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("listen exited %d after SIGINT\nstderr:\n%s", code, l.stderr.String())
	}
	if out := l.stdout.String(); out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
}

func TestListenServerGone(t *testing.T) {
	t.Parallel()
	srv, addr := startServe(t)
	l := startBin(t, "listen", "--addr", addr)
	l.waitLine(t, listenReadyRE, 20*time.Second)
	srv.interrupt(t)
	if code := l.wait(t, 20*time.Second); code != 1 {
		t.Fatalf("listen exited %d when the server went away, want 1\nstderr:\n%s", code, l.stderr.String())
	}
	if !strings.Contains(l.stderr.String(), "listen: "+addr+": the server closed the connection") {
		t.Errorf("stderr %q does not say the server closed the connection", l.stderr.String())
	}
}

func TestListenTimeout(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	r := runBin(t, 20*time.Second, "listen", "--addr", addr, "--count", "1", "--timeout", "1s")
	r.wantCode(t, 1)
	if !strings.Contains(r.stderr, "0 of 1 frames in 1s") {
		t.Errorf("stderr %q does not explain the time-out", r.stderr)
	}
	r = runBin(t, 20*time.Second, "listen", "--addr", addr, "--timeout", "1s")
	r.wantCode(t, 0)
}

func TestListenBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"addr without port", []string{"--addr", "localhost"}, `--addr "localhost" is not of the form`},
		{"addr port out of range", []string{"--addr", ":99999"}, "the port must be a number from 1 to 65535"},
		{"addr scheme", []string{"--addr", "http://x"}, `unsupported scheme "http"`},
		{"negative count", []string{"--count", "-1"}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, 20*time.Second, append([]string{"listen"}, tc.args...)...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, tc.msg) || !strings.Contains(r.stderr, "Run 'simplerpc listen --help' for usage.") {
				t.Errorf("stderr %q does not contain %q and the pointer to the help", r.stderr, tc.msg)
			}
		})
	}
}

// TestListenClosedAfterSize: a server that closes right after its message
// size makes listen exit 1, even with --timeout.
func TestListenClosedAfterSize(t *testing.T) {
	t.Parallel()
	addr := fakeServer(t, func(c net.Conn) { _ = announce(c) })
	r := runBin(t, 20*time.Second, "listen", "--addr", addr, "--timeout", "10s")
	r.wantCode(t, 1)
	if want := "listen: " + addr + ": the server closed the connection"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not contain %q", r.stderr, want)
	}
}

// TestListenSend: the --send frames go out in order once the connection is
// ready, and what they bring back is printed.
func TestListenSend(t *testing.T) {
	t.Parallel()
	_, addr := startServe(t)
	r := runBin(t, 20*time.Second, "listen", "--addr", addr, "--count", "2",
		"--send", `0 {"echo": 1}`, "--send", "1\t{\"to\": \"all\"}")
	r.wantCode(t, 0)
	lines := listenLines(t, r.stdout)
	if len(lines) != 2 || lines[0].Opcode != 0 || string(lines[0].Data) != `{"echo":1}` ||
		lines[1].Opcode != 1 || string(lines[1].Data) != `{"to":"all"}` {
		t.Errorf("printed %+v, want the echo then the broadcast", lines)
	}
	for _, want := range []string{"sent opcode 0 {\"echo\":1}\n", "sent opcode 1 {\"to\":\"all\"}\n"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr %q does not contain %q", r.stderr, want)
		}
	}

	// A frame of its own joins the room: a second listener hears the
	// first one's frame, sent once both are ready.
	a := startBin(t, "listen", "--addr", addr, "--count", "1")
	a.waitLine(t, listenReadyRE, 20*time.Second)
	runBin(t, 20*time.Second, "listen", "--addr", addr, "--send", `1 {"hello": "room"}`, "--count", "1").wantCode(t, 0)
	if code := a.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("listen exited %d\nstderr:\n%s", code, a.stderr.String())
	}
	if lines := listenLines(t, a.stdout.String()); len(lines) != 1 || string(lines[0].Data) != `{"hello":"room"}` {
		t.Errorf("the first listener printed %+v", lines)
	}
}

// TestListenSendBad: --send values are checked before anything is sent.
func TestListenSendBad(t *testing.T) {
	t.Parallel()
	addr, got := recordingServer(t)
	big := `6 {"p":"` + strings.Repeat("x", 200) + `"}`
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"opcode", []string{"--send", "x {}"}, `--send "x {}": OPCODE "x": want a non-negative integer`},
		{"negative opcode", []string{"--send", "-6 {}"}, `OPCODE "-6": want a non-negative integer`},
		{"not an object", []string{"--send", "6 [1]"}, `--send "6 [1]": JSON argument must be an object`},
		{"bad JSON", []string{"--send", `6 {"a":`}, "not valid JSON"},
		{"too large, after a good one", []string{"--send", `6 {"first":1}`, "--send", big},
			"bytes but the server's message size is 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runBin(t, 20*time.Second, append([]string{"listen", "--addr", addr, "--timeout", "10s"}, tc.args...)...)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tc.msg)
			}
		})
	}
	// The server got nothing; a frame sent now is the first it sees.
	runBin(t, 20*time.Second, "call", "--addr", addr, "--no-reply", "6", `{"last":1}`).wantCode(t, 0)
	wantReceived(t, got, `{"last":1}`)
}

// TestListenCountFlood: a server that floods more frames than listen
// queues does not hold listen past --count: the event loop, waiting on
// the full queue, is let go before the close it has to run.
func TestListenCountFlood(t *testing.T) {
	t.Parallel()
	// listen prints slower than the loop reads: by the time it has printed
	// --count frames the loop has filled the queue and waits.
	const count = 2 * listenQueue
	flood := make([]string, 4*listenQueue)
	for i := range flood {
		flood[i] = `1{"n":` + strconv.Itoa(i) + `}`
	}
	addr := fakeServer(t, func(c net.Conn) {
		if announce(c, flood...) == nil {
			_, _ = io.Copy(io.Discard, c)
		}
	})
	const timeout = time.Minute
	r := runBin(t, 2*timeout, "listen", "--addr", addr, "--count", strconv.Itoa(count), "--timeout", timeout.String())
	r.wantCode(t, 0)
	if lines := listenLines(t, r.stdout); len(lines) != count || string(lines[count-1].Data) != `{"n":`+strconv.Itoa(count-1)+`}` {
		t.Errorf("printed %d lines, want the first %d frames", len(lines), count)
	}
	if r.elapsed > timeout/2 {
		t.Errorf("took %v: the close waited for the loop until --timeout", r.elapsed)
	}
}
