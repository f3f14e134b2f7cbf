#!/usr/bin/env python3
"""pytls: a Python 3 peer (standard library only: socket, ssl, json) that
speaks simplerpc over TLS, to check the Go engine's TLS against an
implementation no one here wrote (OpenSSL, through Python's ssl module).

  python3 pytls.py client --addr HOST:PORT --size N --ca CA.pem [--cert C --key K] [--timeout S]
  python3 pytls.py server --size N --cert C --key K [--timeout S]

client mode: connects, verifies the server against CA.pem and the host of
--addr, reads the -2 frame {"message_size": N}, sends padded opcode-0 frames
and reads their echo byte for byte, sends opcode 5 and expects the -1
ArgumentMissing failure, then ends TLS with close_notify (ssl unwrap, which
waits for the server's close_notify) and prints "ok client".

server mode: listens on 127.0.0.1:0, prints "PORT <n>", accepts one
connection, completes the TLS handshake, then behaves like the original
server: sends -2 {"message_size": N} and 1 {"some_data": "..."}, echoes
every opcode-0 frame in the json.dumps form, answers opcode 5 with -1
ArgumentMissing, drops the rest, and prints "ok server" when the peer closes
at a frame boundary.

Exit status 0 on success; 1 with one line "pytls MODE: FAIL: ..." on stderr.
"""
import argparse
import json
import socket
import ssl
import sys

TIMEOUT = 10.0
ARG_MISSING = "Expected argument 'argname' in opcode 5"


class Fail(Exception):
    pass


def pad(text, size):
    raw = text.encode('utf-8')
    if len(raw) > size:
        raise Fail('frame does not fit in %d bytes: %r' % (size, raw[:80]))
    return raw + b' ' * (size - len(raw))


def read_frame(sock, size):
    """Exactly size bytes, or None when the peer closed at a frame boundary."""
    buf = b''
    while len(buf) < size:
        try:
            chunk = sock.recv(size - len(buf))
        except (ssl.SSLEOFError, ConnectionResetError):
            chunk = b''
        if not chunk:
            if buf:
                raise Fail('peer closed after %d of %d bytes' % (len(buf), size))
            return None
        buf += chunk
    return buf


def parse(frame):
    text = frame.decode('utf-8')
    i = text.find('{')
    if i < 0:
        raise Fail('no JSON object in %r' % text[:80])
    return int(text[:i]), json.loads(text[i:].strip())


def run_client(args):
    host, _, port = args.addr.rpartition(':')
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    raw = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    sock = ctx.wrap_socket(raw, server_hostname=host)
    n = args.size
    frame = read_frame(sock, n)
    if frame is None:
        raise Fail('no -2 frame: the server closed')
    op, data = parse(frame)
    if op != -2 or data != {"message_size": n}:
        raise Fail('first frame: %r' % frame[:80])
    for i, text in enumerate(['0{"some_data": 123}', '0{"i": 1, "s": "h\\u00e9llo"}',
                              '0' + json.dumps({"fill": "x" * (n - 40)})]):
        sock.sendall(pad(text, n))
        echo = read_frame(sock, n)
        if echo != pad(text, n):
            raise Fail('echo %d: sent %r, received %r' % (i, text[:60], (echo or b'')[:60]))
    sock.sendall(pad('5{"x": 1}', n))
    op, data = parse(read_frame(sock, n) or b'{}')
    if op != -1 or data.get('reason') != 'ArgumentMissing' or data.get('message') != ARG_MISSING:
        raise Fail('opcode 5: got %d %r' % (op, data))
    # close_notify both ways: unwrap sends ours and waits for the server's.
    sock.unwrap().close()
    print('ok client' + (' with certificate' if args.cert else ''), flush=True)


def run_server(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ls = socket.socket()
    ls.bind(('127.0.0.1', 0))
    ls.listen(1)
    ls.settimeout(TIMEOUT)
    print('PORT %d' % ls.getsockname()[1], flush=True)
    try:
        raw, _ = ls.accept()
    finally:
        ls.close()
    raw.settimeout(TIMEOUT)
    conn = ctx.wrap_socket(raw, server_side=True)
    n = args.size
    try:
        conn.sendall(pad('-2' + json.dumps({"message_size": n}), n))
        conn.sendall(pad('1' + json.dumps({"some_data": "this is sent to whoever just connected"}), n))
        while True:
            frame = read_frame(conn, n)
            if frame is None:
                break
            op, data = parse(frame)
            if op == 0:
                conn.sendall(pad('0' + json.dumps(data), n))
            elif op == 5:
                conn.sendall(pad('-1' + json.dumps({"reason": "ArgumentMissing", "message": ARG_MISSING}), n))
    finally:
        conn.close()
    print('ok server', flush=True)


def main():
    global TIMEOUT
    p = argparse.ArgumentParser(description='simplerpc TLS test peer')
    sub = p.add_subparsers(dest='mode', required=True)
    pc = sub.add_parser('client')
    pc.add_argument('--addr', required=True)
    pc.add_argument('--ca', required=True)
    pc.add_argument('--cert')
    pc.add_argument('--key')
    ps = sub.add_parser('server')
    ps.add_argument('--cert', required=True)
    ps.add_argument('--key', required=True)
    for sp in (pc, ps):
        sp.add_argument('--size', type=int, required=True)
        sp.add_argument('--timeout', type=float, default=TIMEOUT)
    args = p.parse_args()
    TIMEOUT = args.timeout
    try:
        (run_client if args.mode == 'client' else run_server)(args)
    except (Fail, OSError, ValueError) as e:
        print(('pytls %s: FAIL: %s: %s' % (args.mode, type(e).__name__, e)).replace('\n', '\\n'),
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
