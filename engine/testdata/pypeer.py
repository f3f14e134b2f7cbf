#!/usr/bin/env python3
"""pypeer: a Python 3 peer (standard library only) that checks simplerpc's Go
engine against the wire protocol of the original 2016 Python simplerpc
(PROTOCOL.md). It writes frames the way the original wrote them (json.dumps
default separators, ensure_ascii) and reads them the way the original read them.

  python3 pypeer.py client --addr HOST:PORT --size N [--steps a,b,c,d,e,f] [--timeout S]
  python3 pypeer.py server --size N [--size-change M] [--strict] [--timeout S]

Exit status 0 on success (stdout ends with "ok client" / "ok server"), 1 on any
failed check with ONE line on stderr: "pypeer MODE: FAIL at step X: ...", naming
what was expected and what was received (repr of the frame text, trimmed).
Every socket operation is bounded by --timeout (default 10 s). N must leave
room for the frames below (128 or more; the table in PROTOCOL.md uses 256).

client mode -- contract for the Go server under test (message size N):
  * first frame: -2 {"message_size": N}, N bytes, space padded;
  * every opcode X >= 0 except 5: echo the received JSON object on opcode X,
    the object's bytes exactly as received ('+3{"a":1}' -> '3{"a":1}');
  * opcode 5: -1 {"reason": "ArgumentMissing",
                  "message": "Expected argument 'argname' in opcode 5"};
  * malformed frame: -1 reason "MalformedPayload" (messages per PROTOCOL.md
    §1: "JSON data not found" / "JSON malformed for opcode: <op>"), connection
    kept open; the same for a frame padded with NUL bytes;
  * -2 from the client: switch inbound size, answer -2 at the current outbound
    size, then switch outbound size (PROTOCOL.md §3);
  * when the client half-closes, the server closes the connection (EOF).
  The server's own frames may use compact JSON; they are compared by value.
  Steps: a greeting, b golden frames, c bad-input rows, d opcode 5,
  e size change N -> 2N -> N, f clean close. The greeting is always read.

server mode -- behaves like the original server: listens on 127.0.0.1:0,
prints "PORT <n>", accepts one connection, sends -2 {"message_size": N} then
1 {"some_data": "this is sent to whoever just connected"} (then, with
--size-change M, -2 {"message_size": M} at size N and switches its outbound
size to M). It then answers N-byte frames until the peer closes:
  0 -> echo on 0 (json.dumps form);  5 -> -1 ArgumentMissing (as above);
  9 -> 9 {"received": [[op, data], ...]}: every well-formed frame received so
       far, in order, including this opcode 9 frame and ignored ones (the
       answer must fit in the current size, else the server fails);
  -2 -> switch inbound size, answer -2 if the outbound size differs;
  malformed -> -1 MalformedPayload with the original's message (not recorded);
  anything else (1, -1, -3, -6, ...) -> recorded and dropped, never answered.
When the peer closes (or resets) at a frame boundary it prints "ok server".
Frames that break the strict writer rules (exact size, "<opcode>{json}",
space padding) are reported on stderr as warnings, or fail with --strict.
"""
import argparse
import json
import re
import socket
import sys
import time

TIMEOUT = 10.0
MAX_FRAMES = 10000            # bound on the server's read loop
MIN_SIZE, MAX_SIZE = 16, 1 << 20
STEP = 'setup'                # names the step in failure messages


class Fail(Exception):       # a check failed; str() is the one-line reason
    pass


class Malformed(Exception):  # the original's MalformedPayload; str() is its message
    pass


class PeerClosed(Exception):
    def __init__(self, got, reset=False):
        Exception.__init__(self, 'connection %s by peer after %d bytes'
                           % ('reset' if reset else 'closed', got))
        self.got, self.reset = got, reset


def show(raw, limit=200):
    """repr of a frame with its trailing space padding summarised, trimmed."""
    if isinstance(raw, str):
        raw = raw.encode('utf-8')
    fill = b'\x00' if raw.endswith(b'\x00') else b' '
    body = raw.rstrip(fill)
    text = repr(body)
    if len(text) > limit:
        text = text[:limit] + '...'
    return '%s + %d %s = %d bytes' % (text, len(raw) - len(body),
                                      'NULs' if fill == b'\x00' else 'spaces', len(raw))


def pad(text, size):
    """Frame text (str or bytes) padded with ASCII spaces to exactly size bytes."""
    raw = text.encode('utf-8') if isinstance(text, str) else text
    if len(raw) > size:
        raise Fail('frame does not fit in %d bytes: %s' % (size, show(raw)))
    return raw + b' ' * (size - len(raw))


def encode_original(op, data, size):
    """The original's writer: str(op) + json.dumps(data), space padded."""
    return pad(str(op) + json.dumps(data), size)


def read_frame(sock, size, timeout=None):
    """Read exactly size bytes; PeerClosed on EOF/reset, socket.timeout when slow."""
    deadline = time.monotonic() + (timeout or TIMEOUT)
    buf = b''
    while len(buf) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout('timed out after %d of %d bytes' % (len(buf), size))
        sock.settimeout(left)
        try:
            chunk = sock.recv(size - len(buf))
        except ConnectionResetError:
            raise PeerClosed(len(buf), reset=True)
        if not chunk:
            raise PeerClosed(len(buf))
        buf += chunk
    return buf


def parse_original(frame):
    """The original's reader: int() of the text before the first '{', then
    json.loads of the rest stripped of whitespace. Raises Malformed."""
    try:
        text = frame.decode('utf-8') if isinstance(frame, bytes) else frame
    except UnicodeDecodeError as e:
        raise Malformed('frame is not UTF-8: %s' % e)
    i = text.find('{')
    if i < 0:
        raise Malformed('JSON data not found')
    try:
        op = int(text[:i])
    except ValueError as e:     # the original let this kill the server
        raise Malformed('Opcode not an integer: %s' % e)
    try:
        data = json.loads(text[i:].strip())
    except ValueError:
        raise Malformed('JSON malformed for opcode: %d' % op)
    return op, data


FRAME_RE = re.compile(r'-?(?:0|[1-9][0-9]*)\{')


def check_frame(raw, size):
    """Strict check of a frame a peer wrote: exactly size bytes, '<opcode>{json
    object}' then only ASCII space padding (never NUL). Returns the unpadded
    text; raises Fail."""
    if len(raw) != size:
        raise Fail('frame is %d bytes, expected %d: %s' % (len(raw), size, show(raw)))
    if b'\x00' in raw:
        raise Fail('NUL byte in frame, padding must be ASCII spaces: %s' % show(raw))
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        raise Fail('frame is not UTF-8: %s' % show(raw))
    m = FRAME_RE.match(text)
    if not m:
        raise Fail('frame does not start with <opcode>{: %s' % show(raw))
    try:
        _, end = json.JSONDecoder().raw_decode(text, m.end() - 1)
    except ValueError as e:
        raise Fail('unreadable JSON object (%s): %s' % (e, show(raw)))
    if text[end:].strip(' '):
        raise Fail('bytes after the JSON object are not only spaces: %s' % show(raw))
    return text[:end]


# ---------------------------------------------------------------- client mode

GOLDEN = [  # PROTOCOL.md §1, message_size 256 in the table
    (0, {"some_data": 123}, r'0{"some_data": 123}'),
    (1, {"some_data": "this is sent to every connection"},
     r'1{"some_data": "this is sent to every connection"}'),
    (-1, {"reason": "ArgumentMissing",
          "message": "Expected argument 'argname' in opcode 0"},
     r'''-1{"reason": "ArgumentMissing", "message": "Expected argument 'argname' in opcode 0"}'''),
    (-2, {"message_size": 256}, r'-2{"message_size": 256}'),
    (42, {}, r'42{}'),
    (7, {"nested": {"a": [1, 2.5, None, True, "x"]}, "u": "h\u00e9llo \u2603"},
     r'7{"nested": {"a": [1, 2.5, null, true, "x"]}, "u": "h\u00e9llo \u2603"}'),
]
ACCEPTED = [('1 {"a": 1}', '1{"a": 1}'), ('+3{"a":1}', '3{"a":1}'),
            (' 4{"a":1}', '4{"a":1}')]
MALFORMED = [('0', 'JSON data not found'), ('1[1,2]', 'JSON data not found'),
             ('1{"a":', 'JSON malformed for opcode: 1'),
             ('1{"a":1}}', 'JSON malformed for opcode: 1'),
             ('abc{}', None), ('{}', None)]   # None: any non-empty message
ALIVE = '0{"still": "alive"}'
ARG_MISSING = "Expected argument 'argname' in opcode 5"


class ClientPeer:
    def __init__(self, sock, size):
        self.sock, self.out, self.inb = sock, size, size

    def send(self, text):     # str or bytes, padded to the outbound size
        self.sock.sendall(pad(text, self.out))

    def recv(self, what):
        try:
            raw = read_frame(self.sock, self.inb)
        except PeerClosed as e:
            raise Fail('%s: expected a %d-byte frame, %s' % (what, self.inb, e))
        except socket.timeout:
            raise Fail('%s: expected a %d-byte frame, none within %gs'
                       % (what, self.inb, TIMEOUT))
        try:
            check_frame(raw, self.inb)
            return raw, parse_original(raw)
        except (Fail, Malformed) as e:
            raise Fail('%s: %s' % (what, e))

    def expect_echo(self, sent, echo, what):
        self.send(sent)
        raw, _ = self.recv(what)
        want = pad(echo, self.inb)
        if raw != want:
            raise Fail('%s: expected echo %s, received %s' % (what, show(want), show(raw)))

    def expect_frame(self, op, data, what):
        raw, (got_op, got) = self.recv(what)
        if got_op != op or got != data:
            raise Fail('%s: expected opcode %d %s, received %s'
                       % (what, op, json.dumps(data), show(raw)))

    def expect_failure(self, sent, reason, message, what):
        self.send(sent)
        raw, (op, data) = self.recv(what)
        msg = data.get('message')
        ok = (op == -1 and data.get('reason') == reason and isinstance(msg, str)
              and (msg == message if message is not None else msg != ''))
        if not ok:
            raise Fail('%s: expected -1 reason %r message %s, received %s'
                       % (what, reason, repr(message) if message else '(any)', show(raw)))


def step_b(c):
    for op, data, golden in GOLDEN:
        if encode_original(op, data, 256) != pad(golden, 256):
            raise Fail('encoder self-check: json.dumps gives %s, golden is %r'
                       % (show(encode_original(op, data, 256)), golden))
    for op, _, golden in GOLDEN:
        if op >= 0:
            c.expect_echo(golden, golden, 'golden %r' % golden)


def step_c(c):
    for sent, echo in ACCEPTED:
        c.expect_echo(sent, echo, 'accepted row %r' % sent)
    rows = [(pad(t, c.out), msg, repr(t)) for t, msg in MALFORMED]
    nul = b'0{"a": 1}'
    rows.append((nul + b'\x00' * (c.out - len(nul)), None, 'NUL padded %r' % nul))
    for raw, msg, name in rows:
        c.expect_failure(raw, 'MalformedPayload', msg, 'malformed row %s' % name)
        c.expect_echo(ALIVE, ALIVE, 'echo of %r after malformed row %s' % (ALIVE, name))


def change_size(c, new, what):
    c.send(str(-2) + json.dumps({"message_size": new}))   # at the old size
    c.out = new
    c.expect_frame(-2, {"message_size": new}, what)       # at the server's old size
    c.inb = new


def step_e(c):
    n = c.out
    m = n * 2
    change_size(c, m, 'answer to -2 %d' % m)
    big = '0' + json.dumps({"big": ('0123456789' * (n // 10 + 1))[:n]})
    c.expect_echo(big, big, 'echo of a %d-byte frame at size %d' % (len(big), m))
    change_size(c, n, 'answer to -2 %d (back down)' % n)
    back = '0{"back": "at %d"}' % n
    c.expect_echo(back, back, 'echo at size %d after changing back' % n)


def step_f(c):
    c.sock.shutdown(socket.SHUT_WR)
    try:
        c.sock.settimeout(TIMEOUT)
        rest = c.sock.recv(c.inb)
    except socket.timeout:
        raise Fail('after half-close: expected EOF from the server, none within %gs'
                   % TIMEOUT)
    if rest:
        raise Fail('after half-close: expected EOF, received %s' % show(rest))


def run_client(args):
    global STEP
    n, (host, _, port) = args.size, args.addr.rpartition(':')
    STEP = 'connect to %s' % args.addr
    sock = socket.create_connection((host.strip('[]'), int(port)), timeout=TIMEOUT)
    c = ClientPeer(sock, n)
    try:
        STEP = 'a (greeting)'
        c.expect_frame(-2, {"message_size": n}, 'first frame')
        steps = [('b', 'b (golden frames)', step_b), ('c', 'c (bad input)', step_c),
                 ('d', 'd (opcode 5)', lambda c: c.expect_failure(
                     '5{"x": 1}', 'ArgumentMissing', ARG_MISSING, 'opcode 5')),
                 ('e', 'e (size change)', step_e), ('f', 'f (clean close)', step_f)]
        for letter, name, fn in steps:
            if letter in args.steps:
                STEP = name
                fn(c)
    finally:
        sock.close()
    print('ok client', flush=True)


# ---------------------------------------------------------------- server mode

def run_server(args):
    global STEP
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(1)
    print('PORT %d' % ls.getsockname()[1], flush=True)
    STEP = 'accept'
    ls.settimeout(TIMEOUT)
    try:
        conn, _ = ls.accept()
    except socket.timeout:
        raise Fail('expected one connection, none within %gs' % TIMEOUT)
    finally:
        ls.close()
    try:
        serve(conn, args)
    finally:
        conn.close()
    print('ok server', flush=True)


def serve(conn, args):
    global STEP
    inb = out = args.size
    gone = []        # once a send fails the peer is gone: stop writing, read on

    def send(op, data):
        if not gone:
            try:
                conn.sendall(encode_original(op, data, out))
            except (BrokenPipeError, ConnectionResetError) as e:
                gone.append(e)

    STEP = 'greeting'
    send(-2, {"message_size": out})
    send(1, {"some_data": "this is sent to whoever just connected"})
    if args.size_change:
        send(-2, {"message_size": args.size_change})
        out = args.size_change
    received = []
    for count in range(1, MAX_FRAMES + 1):
        STEP = 'read frame %d at size %d' % (count, inb)
        try:
            raw = read_frame(conn, inb)
        except PeerClosed as e:
            if e.got:
                raise Fail('%s in the middle of a %d-byte frame' % (e, inb))
            return
        except socket.timeout:
            raise Fail('expected a frame or a close, nothing within %gs' % TIMEOUT)
        try:
            check_frame(raw, inb)
        except Fail as e:
            if args.strict:
                raise
            print('pypeer server: warning: frame %d: %s' % (count, e), file=sys.stderr)
        try:
            op, data = parse_original(raw)
        except Malformed as e:
            send(-1, {"reason": "MalformedPayload", "message": str(e)})
            continue
        STEP = 'answer frame %d (opcode %d)' % (count, op)
        received.append([op, data])
        if op == 0:
            send(0, data)
        elif op == 5:
            send(-1, {"reason": "ArgumentMissing", "message": ARG_MISSING})
        elif op == 9:
            send(9, {"received": received})
        elif op == -2:
            size = data.get('message_size')
            if type(size) is not int or not MIN_SIZE <= size <= MAX_SIZE:
                raise Fail('expected -2 {"message_size": %d..%d}, received %s'
                           % (MIN_SIZE, MAX_SIZE, show(raw)))
            inb = size
            if out != size:
                send(-2, {"message_size": size})
                out = size
        # any other opcode: recorded and dropped, like the original
    raise Fail('more than %d frames' % MAX_FRAMES)


def size_arg(text):
    v = int(text)
    if not MIN_SIZE <= v <= MAX_SIZE:
        raise argparse.ArgumentTypeError('size must be in %d..%d' % (MIN_SIZE, MAX_SIZE))
    return v


def steps_arg(text):
    letters = set(text.replace(',', '').replace(' ', ''))
    if not letters <= set('abcdef'):
        raise argparse.ArgumentTypeError('steps are letters a..f, e.g. a,b,c')
    return letters


def main(argv=None):
    global TIMEOUT
    p = argparse.ArgumentParser(description='simplerpc Python test peer')
    sub = p.add_subparsers(dest='mode', required=True)
    pc = sub.add_parser('client', help='check a Go server')
    pc.add_argument('--addr', required=True, help='HOST:PORT of the Go server')
    pc.add_argument('--steps', type=steps_arg, default=set('abcdef'))
    ps = sub.add_parser('server', help='act like the original server for a Go client')
    ps.add_argument('--size-change', type=size_arg, metavar='M')
    ps.add_argument('--strict', action='store_true',
                    help='fail on frames breaking the strict writer rules')
    for sp in (pc, ps):
        sp.add_argument('--size', type=size_arg, required=True, metavar='N')
        sp.add_argument('--timeout', type=float, default=TIMEOUT, metavar='S')
    args = p.parse_args(argv)
    TIMEOUT = args.timeout
    try:
        (run_client if args.mode == 'client' else run_server)(args)
    except (Fail, OSError, ValueError) as e:
        msg = '%s: %s' % (type(e).__name__, e) if not isinstance(e, Fail) else str(e)
        print(('pypeer %s: FAIL at step %s: %s' % (args.mode, STEP, msg))
              .replace('\n', '\\n'), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
