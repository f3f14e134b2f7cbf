// Runs the client against a real simplerpc server (testserver, with go run),
// with the global WebSocket where there is one, the ws package otherwise;
// on Node 20, whose global WebSocket is behind --experimental-websocket,
// this file runs itself again under that flag.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, RPCError, connect } from '../simplerpc.js';

const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket;
const underFlag = !globalThis.WebSocket && process.allowedNodeEnvironmentFlags.has('--experimental-websocket');
const root = fileURLToPath(new URL('../../..', import.meta.url));
let server, url, authURL;

before(async () => {
  server = spawn('go', ['run', './clients/js/testserver'], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: server.stdout });
  // Its first two lines: the open server's URL, the one that requires authentication.
  [url, authURL] = await new Promise((resolve, reject) => {
    const got = [];
    lines.on('line', (l) => { got.push(l); if (got.length === 2) resolve(got); });
    server.once('exit', (code) => reject(new Error(`testserver exited: ${code}`)));
  });
}, { timeout: 120000 });

after(() => { server?.stdin.end(); });

const open = (opts = {}) => connect(url, { WebSocket, ...opts });

// next resolves with the next frame on op.
const next = (c, op) => new Promise((resolve) => {
  let done = false;
  c.on(op, (data) => { if (!done) { done = true; resolve(data); } });
});

test('learns the frame size and echoes', { timeout: 60000 }, async () => {
  const c = await open();
  assert.equal(c.size, 1024);
  const got = next(c, 7);
  c.send(7, { a: 'héllo ☃' });
  assert.deepEqual(await got, { a: 'héllo ☃' });
  c.close();
});

test('failures on -1', { timeout: 60000 }, async () => {
  const c = await open();
  const got = next(c, -1);
  c.send(5, {});
  assert.equal((await got).reason, 'ArgumentMissing');
  c.close();
});

test('calls resolve, and typed failures reject', { timeout: 60000 }, async () => {
  const c = await open();
  assert.deepEqual(await c.call(1, { x: 1 }), { x: 1 });
  await assert.rejects(c.call(2, {}), (e) => e instanceof RPCError && e.reason === 'ArgumentValueError' && e.message === 'no, thanks');
  await assert.rejects(c.call(99, {}), (e) => e.reason === 'UnknownOpcode');
  assert.throws(() => c.send(7, { s: 'x'.repeat(2000) }), (e) => e.reason === 'FrameTooLarge');
  c.close();
});

test('the server calls the client', { timeout: 60000 }, async () => {
  const c = await open();
  c.onCall(20, async (data) => ({ doubled: data.n * 2 }));
  const got = next(c, 11);
  c.send(10, { n: 21 });
  assert.deepEqual(await got, { doubled: 42 });
  c.onCall(20, () => { throw new RPCError('ArgumentValueError', 'nope'); });
  const failed = next(c, 11);
  c.send(10, { n: 1 });
  assert.deepEqual(await failed, { error: 'ArgumentValueError' });
  c.close();
});

test('send to all reaches every client', { timeout: 60000 }, async () => {
  const a = await open(), b = await open();
  const ga = next(a, 13), gb = next(b, 13);
  a.send(12, { hi: 1 });
  assert.deepEqual(await ga, { hi: 1 });
  assert.deepEqual(await gb, { hi: 1 });
  a.close(); b.close();
});

test('ping', { timeout: 60000 }, async () => {
  const c = await open();
  assert.ok((await c.ping()) >= 0);
  c.close();
});

test('sends before the size is known are held', { timeout: 60000 }, async () => {
  const c = new Client(url, { WebSocket });
  const got = next(c, 3);
  c.send(3, { early: true });
  assert.deepEqual(await got, { early: true });
  c.close();
});

test('reconnects after the connection drops, and close fails pending calls', { timeout: 60000 }, async () => {
  let opens = 0;
  const c = new Client(url, { WebSocket, backoffMin: 10, backoffMax: 50, onOpen: () => opens++ });
  await c.ready();
  const closedErr = new Promise((resolve) => { c.opts.onClose = (_, e) => resolve(e); });
  c.ws.close(4001); // a drop, as far as the client knows
  assert.equal((await closedErr).reason, 'Closed');
  await c.ready();
  assert.equal(opens, 2);
  assert.deepEqual(await c.call(1, { again: true }), { again: true });
  const pending = c.call(1, {}, { timeout: 0 });
  c.close();
  await assert.rejects(pending, (e) => e.reason === 'Closed');
  await assert.rejects(c.ready(), (e) => e.reason === 'Closed');
});

// Authentication: the server at authURL takes {token: 'good:NAME'} as NAME
// and echoes every frame as {identity, data}; a frame on 30 restarts it.

test('logs in: the identity, and frames held before the login arrive after it', { timeout: 60000 }, async () => {
  const c = new Client(authURL, { WebSocket, credentials: { token: 'good:alice' } });
  const failures = [];
  c.on(-1, (f) => failures.push(f));
  const got = [];
  const all = new Promise((resolve) => c.on(7, (d) => { got.push(d); if (got.length === 3) resolve(); }));
  for (let n = 0; n < 3; n++) c.send(7, { n }); // held: not connected yet
  await c.ready();
  assert.equal(c.identity, 'alice');
  await all;
  assert.deepEqual(got, [0, 1, 2].map((n) => ({ identity: 'alice', data: { n } })));
  assert.deepEqual(await c.call(1, { x: 1 }), { identity: 'alice', data: { x: 1 } });
  assert.deepEqual(failures, []);
  c.close();
});

test('logs in again through a server restart; what was sent meanwhile arrives after the login', { timeout: 60000 }, async () => {
  let opens = 0, dropped = 0;
  const failures = [], got = [];
  const sentWhileDown = 20;
  let reopened, allArrived;
  const reopen = new Promise((resolve) => { reopened = resolve; });
  const arrived = new Promise((resolve) => { allArrived = resolve; });
  const calls = [];
  const c = new Client(authURL, {
    WebSocket, backoffMin: 10, backoffMax: 200,
    credentials: () => ({ token: 'good:bob' }),
    onOpen: () => { if (++opens === 2) reopened(); },
    // Disconnected: these are held, and go out only after the next login.
    onClose: () => {
      if (dropped++) return;
      for (let n = 0; n < sentWhileDown; n++) c.send(8, { n });
      calls.push(c.call(1, { held: true }));
    },
  });
  c.on(-1, (f) => failures.push(f));
  c.on(8, (d) => { got.push(d); if (got.length === sentWhileDown) allArrived(); });
  await c.ready();
  assert.equal(c.identity, 'bob');
  c.send(30, {}); // the server restarts: -8, then a while with nothing listening
  await reopen;
  await arrived;
  assert.equal(c.identity, 'bob');
  assert.deepEqual(got, Array.from({ length: sentWhileDown }, (_, n) => ({ identity: 'bob', data: { n } })));
  assert.deepEqual(await calls[0], { identity: 'bob', data: { held: true } });
  assert.deepEqual(failures, [], 'no frame was refused');
  c.close();
});

test('a bad token: connect rejects with Unauthorized and the client does not reconnect', { timeout: 60000 }, async () => {
  let sockets = 0;
  class Counting extends WebSocket {
    constructor(...args) { super(...args); sockets++; }
  }
  let closedWith;
  const opts = { WebSocket: Counting, backoffMin: 1, credentials: { token: 'stolen' }, onClose: (_, e) => { closedWith = e; } };
  await assert.rejects(connect(authURL, opts),
    (e) => e instanceof RPCError && e.reason === 'Unauthorized' && e.message === 'unknown token');
  assert.equal(closedWith?.reason, 'Unauthorized');
  const c = new Client(authURL, opts);
  const held = c.call(1, {});
  await assert.rejects(c.ready(), (e) => e.reason === 'Unauthorized');
  await assert.rejects(held, (e) => e.reason === 'Unauthorized');
  assert.equal(c.closed, true);
  assert.equal(c.timer, null, 'no reconnection is scheduled');
  assert.throws(() => c.send(7, {}), (e) => e.reason === 'Unauthorized');
  assert.equal(sockets, 2, 'one connection each');
});

test('credentials refused at a reconnection stop the client', { timeout: 60000 }, async () => {
  let n = 0;
  let refused, held;
  const stopped = new Promise((resolve) => { refused = resolve; });
  const c = new Client(authURL, {
    WebSocket, backoffMin: 1, backoffMax: 5,
    credentials: async () => ({ token: n++ === 0 ? 'good:carol' : 'revoked' }),
    onClose: (_, e) => {
      if (e.reason === 'Unauthorized') refused(e);
      else held = c.call(1, {}); // disconnected: held for the next connection
    },
  });
  await c.ready();
  assert.equal(c.identity, 'carol');
  c.ws.close(4001); // a drop
  assert.equal((await stopped).message, 'unknown token');
  await assert.rejects(held, (e) => e.reason === 'Unauthorized');
  assert.equal(c.closed, true);
  assert.equal(n, 2);
});

test('credentials to a server that does not ask for them: the handshake times out', { timeout: 60000 }, async () => {
  await assert.rejects(connect(url, { WebSocket, reconnect: false, handshakeTimeout: 300, credentials: { token: 'good:x' } }),
    (e) => e.reason === 'Timeout' && /acknowledgement of the credentials/.test(e.message));
});

if (underFlag) {
  test('the same with the global WebSocket (node --experimental-websocket)', { timeout: 300000 }, async () => {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT; // a file of its own, not a part of this run
    const child = spawn(process.execPath, ['--experimental-websocket', fileURLToPath(import.meta.url)],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(code, 0, out);
    assert.match(out, /# pass 13\n# fail 0\n/, out);
  });
}
