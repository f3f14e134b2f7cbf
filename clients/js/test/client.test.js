// Runs the client against a real simplerpc server (testserver, with go run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, RPCError, connect } from '../simplerpc.js';

const WebSocket = globalThis.WebSocket ?? (await import('ws')).WebSocket;
const root = fileURLToPath(new URL('../../..', import.meta.url));
let server, url;

before(async () => {
  server = spawn('go', ['run', './clients/js/testserver'], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: server.stdout });
  url = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
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

test('learns the frame size and echoes', async () => {
  const c = await open();
  assert.equal(c.size, 1024);
  const got = next(c, 7);
  c.send(7, { a: 'héllo ☃' });
  assert.deepEqual(await got, { a: 'héllo ☃' });
  c.close();
});

test('failures on -1', async () => {
  const c = await open();
  const got = next(c, -1);
  c.send(5, {});
  assert.equal((await got).reason, 'ArgumentMissing');
  c.close();
});

test('calls resolve, and typed failures reject', async () => {
  const c = await open();
  assert.deepEqual(await c.call(1, { x: 1 }), { x: 1 });
  await assert.rejects(c.call(2, {}), (e) => e instanceof RPCError && e.reason === 'ArgumentValueError' && e.message === 'no, thanks');
  await assert.rejects(c.call(99, {}), (e) => e.reason === 'UnknownOpcode');
  assert.throws(() => c.send(7, { s: 'x'.repeat(2000) }), (e) => e.reason === 'FrameTooLarge');
  c.close();
});

test('the server calls the client', async () => {
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

test('send to all reaches every client', async () => {
  const a = await open(), b = await open();
  const ga = next(a, 13), gb = next(b, 13);
  a.send(12, { hi: 1 });
  assert.deepEqual(await ga, { hi: 1 });
  assert.deepEqual(await gb, { hi: 1 });
  a.close(); b.close();
});

test('ping', async () => {
  const c = await open();
  assert.ok((await c.ping()) >= 0);
  c.close();
});

test('sends before the size is known are held', async () => {
  const c = new Client(url, { WebSocket });
  const got = next(c, 3);
  c.send(3, { early: true });
  assert.deepEqual(await got, { early: true });
  c.close();
});

test('reconnects after the connection drops, and close fails pending calls', async () => {
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
