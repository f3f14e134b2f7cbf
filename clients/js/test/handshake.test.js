// Runs the client against servers that stall the handshake (a TCP server
// that says nothing, a WebSocket server that sends no frame size, one that
// does not acknowledge the credentials) and one that checks what comes
// before its acknowledgement: with the ws package and, where there is
// one, the global WebSocket (Node 20 has it behind --experimental-websocket:
// this file runs itself again under that flag).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocket as WSPackage, WebSocketServer } from 'ws';
import { Client, RPCError, connect } from '../simplerpc.js';

const impls = [['ws', WSPackage]];
if (globalThis.WebSocket) impls.push(['global', globalThis.WebSocket]);

// silentTCP accepts connections and says nothing; it counts them and
// resolves closedBy(n) once n of them were closed by the client.
async function silentTCP() {
  const sockets = [];
  let waiters = [];
  const srv = net.createServer((s) => {
    sockets.push(s);
    s.on('close', () => { s.closedByPeer = true; check(); });
    s.on('error', () => {});
    s.resume(); // read, to see the client's end
    check();
  });
  const check = () => {
    waiters = waiters.filter((w) => (w.test() ? (w.resolve(), false) : true));
  };
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `ws://127.0.0.1:${srv.address().port}/rpc`,
    sockets,
    // until resolves once test() holds.
    until: (t) => new Promise((resolve) => { waiters.push({ test: t, resolve }); check(); }),
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => srv.close(r)); },
  };
}

// wsServer runs onConnection(socket) for each WebSocket connection.
async function wsServer(onConnection) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', onConnection);
  await new Promise((r) => wss.once('listening', r));
  return {
    url: `ws://127.0.0.1:${wss.address().port}/rpc`,
    close: () => { for (const c of wss.clients) c.terminate(); return new Promise((r) => wss.close(r)); },
  };
}

for (const [name, WebSocket] of impls) {
  test(`${name}: a server that accepts TCP and says nothing: the handshake times out`, { timeout: 30000 }, async () => {
    const srv = await silentTCP();
    await assert.rejects(connect(srv.url, { WebSocket, reconnect: false, handshakeTimeout: 200 }),
      (e) => e instanceof RPCError && e.reason === 'Timeout' && /WebSocket did not open within 200 ms/.test(e.message));
    await srv.close();
  });

  test(`${name}: reconnecting to a server that says nothing, every attempt ends`, { timeout: 30000 }, async () => {
    const srv = await silentTCP();
    const c = new Client(srv.url, { WebSocket, handshakeTimeout: 100, backoffMin: 1, backoffMax: 5 });
    await srv.until(() => srv.sockets.length >= 3);
    c.close();
    await assert.rejects(c.ready(), (e) => e.reason === 'Closed');
    // The client closed each socket it gave up on.
    await srv.until(() => srv.sockets.every((s) => s.closedByPeer));
    await srv.close();
  });

  test(`${name}: a WebSocket server that sends no frame size: the handshake times out`, { timeout: 30000 }, async () => {
    const srv = await wsServer(() => {});
    await assert.rejects(connect(srv.url, { WebSocket, reconnect: false, handshakeTimeout: 200 }),
      (e) => e.reason === 'Timeout' && /no frame size \(-2\) came/.test(e.message));
    await srv.close();
  });

  test(`${name}: a server that does not acknowledge the credentials: the handshake times out`, { timeout: 30000 }, async () => {
    const got = [];
    const srv = await wsServer((ws) => {
      ws.on('message', (m) => got.push(String(m).trim()));
      ws.send('-2{"message_size":128}');
    });
    await assert.rejects(connect(srv.url, { WebSocket, reconnect: false, handshakeTimeout: 300, credentials: { token: 't' } }),
      (e) => e.reason === 'Timeout' && /acknowledgement of the credentials/.test(e.message));
    assert.deepEqual(got, ['-9{"token":"t"}']);
    await srv.close();
  });

  test(`${name}: credentials that are not an object stop the client`, { timeout: 30000 }, async () => {
    const srv = await wsServer((ws) => ws.send('-2{"message_size":128}'));
    await assert.rejects(connect(srv.url, { WebSocket, credentials: () => 'token' }),
      (e) => e.reason === 'MalformedPayload' && /credentials: not a JSON object/.test(e.message));
    await assert.rejects(connect(srv.url, { WebSocket, credentials: { token: 'x'.repeat(200) } }),
      (e) => e.reason === 'FrameTooLarge');
    await srv.close();
  });

  test(`${name}: held frames go out only after the server acknowledged the credentials`, { timeout: 30000 }, async () => {
    // The server answers the credentials with a ping and acknowledges
    // them only on the pong: whatever the client sent before the
    // acknowledgement comes before the pong.
    let before, gotAll;
    const after = [];
    const all = new Promise((resolve) => { gotAll = resolve; });
    const srv = await wsServer((ws) => {
      const got = [];
      ws.on('message', (m) => {
        const f = String(m).trim();
        if (before) {
          after.push(f);
          if (after.length === 3) gotAll();
          return;
        }
        got.push(f);
        if (f.startsWith('-9')) ws.send('-6{"t":1}');
        if (f.startsWith('-7')) {
          before = got;
          ws.send('-9{"identity":"dana"}');
        }
      });
      ws.send('-2{"message_size":128}');
    });
    const c = new Client(srv.url, { WebSocket, credentials: { token: 't' } });
    c.send(7, { n: 1 });
    c.send(7, { n: 2 });
    await c.ready();
    assert.equal(c.identity, 'dana');
    c.send(7, { n: 3 });
    await all;
    assert.deepEqual(before, ['-9{"token":"t"}', '-7{"t":1}']);
    assert.deepEqual(after, ['7{"n":1}', '7{"n":2}', '7{"n":3}']);
    c.close();
    await srv.close();
  });
}

// Node 20 has a global WebSocket only under a flag: run this file again
// with it, so that the global WebSocket's handshakes are tested too.
if (!globalThis.WebSocket && process.allowedNodeEnvironmentFlags.has('--experimental-websocket')) {
  test('the same under --experimental-websocket (the global WebSocket of Node 20)', { timeout: 120000 }, async () => {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT; // a file of its own, not a part of this run
    const child = spawn(process.execPath, ['--experimental-websocket', fileURLToPath(import.meta.url)],
      { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(code, 0, out);
    assert.match(out, /# pass 12\n# fail 0\n/, out);
  });
}
