// simplerpc.js: a simplerpc client over WebSocket, for browsers and Node 20+.
// One WebSocket message carries one protocol frame (docs/PROTOCOL.md): the
// ASCII opcode, a JSON object, spaces up to the frame size the server
// announces in its first frame (-2). No dependencies, no build step.

const OP_FAILURE = -1, OP_SIZE = -2, OP_REQUEST = -3, OP_REPLY = -4,
  OP_REPLY_FAILURE = -5, OP_PING = -6, OP_PONG = -7, OP_GO_AWAY = -8, OP_AUTH = -9;

const encoder = new TextEncoder();

/** A failure the peer sent (-1, -5) or a local one: `reason` names its kind. */
export class RPCError extends Error {
  constructor(reason, message) {
    super(message || reason);
    this.name = 'RPCError';
    this.reason = reason;
  }
}

/** encodeFrame returns the frame for op and data, padded to size bytes. */
export function encodeFrame(op, data, size) {
  const text = String(op) + JSON.stringify(data ?? {});
  const n = encoder.encode(text).length;
  if (size && n > size) {
    throw new RPCError('FrameTooLarge', `frame of ${n} bytes exceeds the frame size ${size}`);
  }
  return size ? text + ' '.repeat(size - n) : text;
}

/** decodeFrame returns [op, data] for a frame's text. */
export function decodeFrame(text) {
  const i = text.indexOf('{');
  if (i < 0) throw new RPCError('MalformedPayload', 'JSON data not found');
  const op = Number.parseInt(text.slice(0, i).trim(), 10);
  if (!Number.isInteger(op)) throw new RPCError('MalformedPayload', 'Opcode malformed');
  const data = JSON.parse(text.slice(i));
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new RPCError('MalformedPayload', 'JSON data not found');
  }
  return [op, data];
}

/**
 * Client is one logical connection to a simplerpc server: it reconnects
 * with backoff and jitter until closed, holding sends while disconnected.
 * A connection is ready once the server announced its frame size and, with
 * credentials, acknowledged them; each attempt must get there within
 * handshakeTimeout.
 */
export class Client {
  constructor(url, options = {}) {
    this.url = url;
    this.opts = {
      reconnect: true, backoffMin: 100, backoffMax: 10000, callTimeout: 30000,
      handshakeTimeout: 10000, pingInterval: 0, maxHeld: 1024, protocols: ['simplerpc'], ...options,
    };
    this.WS = this.opts.WebSocket ?? globalThis.WebSocket;
    if (!this.WS) throw new TypeError('simplerpc: no WebSocket: pass options.WebSocket (the ws package in Node 20)');
    this.handlers = new Map(); // opcode -> [fn]
    this.callHandlers = new Map(); // opcode -> fn
    this.pending = new Map(); // id -> {resolve, reject, timer, ws: the connection it went out on, or null while held}
    this.pings = new Map(); // t -> resolve
    this.held = []; // [op, data] sent while not ready
    this.nextID = 1;
    this.size = 0; // the frame size; 0 until the server's first frame
    this.identity = ''; // what the server's last acknowledgement of the credentials named
    this.isReady = false; // the size known and, with credentials, the server's acknowledgement received
    this.authenticating = false; // the credentials sent, the verdict not yet received
    this.closed = false;
    this.error = null; // why the client stopped for good
    this.attempt = 0;
    this.ws = null;
    this.timer = null; // the next reconnection
    this.handshakeTimer = null;
    this._readyWaiters = [];
    this._connect();
  }

  /** on registers fn(data, client) for frames on op (>= 0, or -1 for failures). */
  on(op, fn) {
    const list = this.handlers.get(op) ?? [];
    list.push(fn);
    this.handlers.set(op, list);
    return this;
  }

  /** onCall answers the server's calls on op with fn(data)'s value or Promise; a throw is a failure. */
  onCall(op, fn) {
    this.callHandlers.set(op, fn);
    return this;
  }

  /** ready resolves once connected (and authenticated, with credentials). */
  ready() {
    if (this.isReady) return Promise.resolve();
    if (this.closed) return Promise.reject(this.error);
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  /** send sends data on op; held while not ready (up to maxHeld frames). */
  send(op, data = {}) {
    this._out(op, data);
  }

  // _out sends a frame, or holds it; it returns the connection it went out on, or null.
  _out(op, data) {
    if (this.closed) throw this.error;
    if (!this.isReady || this.ws.readyState !== 1) { // not ready, or closing: its close will follow
      if (this.held.length >= this.opts.maxHeld) throw new RPCError('Overloaded', 'too many frames held');
      this.held.push([op, data]);
      return null;
    }
    this.ws.send(encodeFrame(op, data, this.size));
    return this.ws;
  }

  /**
   * call sends a request on op and resolves with the reply's data, or rejects
   * with an RPCError. A call made while not ready waits for the connection,
   * within its timeout.
   */
  call(op, data = {}, { timeout = this.opts.callTimeout } = {}) {
    const id = this.nextID++;
    return new Promise((resolve, reject) => {
      const timer = timeout > 0 ? setTimeout(() => {
        this.pending.delete(id);
        this.held = this.held.filter(([o, d]) => o !== OP_REQUEST || d.id !== id); // not sent: it never will be
        reject(new RPCError('Timeout', `call ${op}: no reply within ${timeout} ms`));
      }, timeout) : null;
      const p = { resolve, reject, timer, ws: null };
      this.pending.set(id, p);
      try {
        p.ws = this._out(OP_REQUEST, { id, op, data });
      } catch (e) {
        this._settle(id, null, e);
      }
    });
  }

  /** ping sends a ping and resolves with the round trip in milliseconds. */
  ping({ timeout = this.opts.callTimeout } = {}) {
    const t = Date.now() * 1000 + (this.nextID++ % 1000);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(t);
        reject(new RPCError('Timeout', 'no pong'));
      }, timeout);
      this.pings.set(t, (rtt) => { clearTimeout(timer); resolve(rtt); });
      try {
        this.send(OP_PING, { t });
      } catch (e) {
        clearTimeout(timer);
        this.pings.delete(t);
        reject(e);
      }
    });
  }

  /** close closes the connection for good; pending calls fail with reason Closed. */
  close(code = 1000) {
    if (this.closed) return;
    this._stop(new RPCError('Closed', 'client closed'), code);
  }

  _connect() {
    this.timer = null;
    const ws = new this.WS(this.url, this.opts.protocols);
    this.ws = ws;
    this.size = 0;
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (ev) => { if (ws === this.ws) this._message(ev.data); };
    ws.onclose = (ev) => this._drop(ws, closedError(ev.code, ev.reason));
    // Not every WebSocket follows an error with a close (Node 20's does
    // not for a connection closed before it opened): an error ends it.
    ws.onerror = () => this._drop(ws, closedError(1006, 'connection failed'));
    const t = this.opts.handshakeTimeout;
    if (t > 0) {
      this.handshakeTimer = setTimeout(() => {
        const stage = ws.readyState !== 1 ? 'the WebSocket did not open'
          : !this.size ? 'no frame size (-2) came'
          : 'no acknowledgement of the credentials (-9) came (does the server require authentication?)';
        this._drop(ws, new RPCError('Timeout', `handshake with ${this.url}: ${stage} within ${t} ms`), 4000);
      }, t);
    }
  }

  _message(raw) {
    const text = typeof raw === 'string' ? raw : new TextDecoder().decode(raw);
    let op, data;
    try {
      [op, data] = decodeFrame(text);
    } catch (e) {
      this._emit(OP_FAILURE, { reason: e.reason ?? 'MalformedPayload', message: e.message });
      return;
    }
    switch (op) {
      case OP_SIZE: return this._size(data.message_size);
      case OP_AUTH: return this._authenticated(data);
      case OP_FAILURE:
        if (this.authenticating) return this._refused(data);
        return this._emit(op, data);
      case OP_REQUEST: return this._request(data);
      case OP_REPLY: return this._settle(data.id, data.data ?? {}, null);
      case OP_REPLY_FAILURE: return this._settle(data.id, null, new RPCError(data.reason, data.message));
      case OP_PING: return this.size && this.ws.send(encodeFrame(OP_PONG, data, this.size));
      case OP_PONG: {
        const done = this.pings.get(data.t);
        if (done) { this.pings.delete(data.t); done(Date.now() - Math.floor(data.t / 1000)); }
        return;
      }
      case OP_GO_AWAY: return this._drop(this.ws, closedError(1001, data.reason ?? 'going away'), 1000); // and reconnect
      default: this._emit(op, data);
    }
  }

  _size(n) {
    if (this.size) {
      if (n !== this.size) {
        this.ws.send(encodeFrame(OP_SIZE, { message_size: n }, this.size));
        this.size = n;
      }
      return;
    }
    this.size = n; // the announcement: never answered (PROTOCOL.md §3)
    const creds = this.opts.credentials;
    if (creds == null) return this._open();
    // The credentials go first, and nothing else until the server accepts them.
    this.authenticating = true;
    const ws = this.ws;
    let v;
    try {
      v = typeof creds === 'function' ? creds() : creds;
    } catch (e) {
      return this._credentialsFailed(ws, e);
    }
    Promise.resolve(v).then((obj) => {
      if (ws !== this.ws) return;
      let frame;
      try {
        if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
          throw new RPCError('MalformedPayload', 'not a JSON object');
        }
        frame = encodeFrame(OP_AUTH, obj, this.size);
      } catch (e) {
        // Credentials that are not an object, or do not fit, will not do next time either.
        const err = new RPCError(e.reason ?? 'MalformedPayload', `credentials: ${e.message}`);
        return this._stop(err, 1000);
      }
      ws.send(frame);
    }, (e) => this._credentialsFailed(ws, e));
  }

  // _credentialsFailed drops a connection whose credentials function threw; the client tries again.
  _credentialsFailed(ws, e) {
    if (ws !== this.ws) return;
    this.opts.onError?.(e);
    this._drop(ws, new RPCError('Closed', `credentials: ${e?.message ?? e}`), 1000);
  }

  _authenticated(data) {
    if (!this.authenticating) return; // not asked for
    this.identity = String(data.identity ?? '');
    this._open();
  }

  // _refused stops the client: a failure answered its credentials.
  _refused(data) {
    const err = new RPCError(data.reason ?? 'Unauthorized', data.message || 'the server refused the credentials');
    this._stop(err, 1000);
    this.opts.onClose?.(this, err);
  }

  _open() {
    this.authenticating = false;
    this.isReady = true;
    clearTimeout(this.handshakeTimer);
    this.attempt = 0;
    const ws = this.ws;
    if (this.opts.pingInterval > 0) {
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.ping().catch(() => this._drop(ws, closedError(4000, 'no pong'), 4000)), this.opts.pingInterval);
    }
    for (const [op, data] of this.held.splice(0)) {
      try {
        ws.send(encodeFrame(op, data, this.size));
        if (op === OP_REQUEST) { const p = this.pending.get(data.id); if (p) p.ws = ws; }
      } catch (e) {
        if (op === OP_REQUEST) this._settle(data.id, null, e);
        else this.opts.onError?.(e);
      }
    }
    for (const w of this._readyWaiters.splice(0)) w.resolve();
    this.opts.onOpen?.(this);
  }

  async _request({ id, op, data }) {
    const ws = this.ws;
    const fn = this.callHandlers.get(op);
    let frame;
    if (!fn) {
      frame = [OP_REPLY_FAILURE, { id, reason: 'UnknownOpcode', message: `no call handler for opcode ${op}` }];
    } else {
      try {
        frame = [OP_REPLY, { id, data: (await fn(data, this)) ?? {} }];
      } catch (e) {
        frame = [OP_REPLY_FAILURE, { id, reason: e.reason ?? 'InternalError', message: e.message ?? String(e) }];
      }
    }
    if (ws !== this.ws || !this.isReady) return; // the call died with its connection
    try {
      ws.send(encodeFrame(frame[0], frame[1], this.size));
    } catch (e) {
      ws.send(encodeFrame(OP_REPLY_FAILURE, { id, reason: 'InternalError', message: 'reply too large' }, this.size));
    }
  }

  _emit(op, data) {
    for (const fn of this.handlers.get(op) ?? []) {
      try { fn(data, this); } catch (e) { this.opts.onError?.(e); }
    }
  }

  _settle(id, data, err) {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (err) p.reject(err); else p.resolve(data);
  }

  // _stop ends the client for good with err: pending and held calls and
  // ready's waiters reject with it, and it does not reconnect.
  _stop(err, code) {
    this.closed = true;
    this.error = err;
    clearTimeout(this.timer);
    this.timer = null;
    this.held = [];
    for (const id of [...this.pending.keys()]) this._settle(id, null, err);
    if (this.ws) this._drop(this.ws, err, code);
    else for (const w of this._readyWaiters.splice(0)) w.reject(err);
  }

  // _drop ends the connection ws, once, whatever ended it: its close, an
  // error, the handshake's timeout, a go-away, the client. It does not wait
  // for the WebSocket's close event, which may never come.
  _drop(ws, err, code) {
    if (ws !== this.ws || !ws) return;
    this.ws = null;
    clearTimeout(this.handshakeTimer);
    clearInterval(this.pinger);
    ws.onerror = () => {}; // the ws package throws an error event nobody listens to
    if (ws.readyState < 2) {
      try { ws.close(code ?? 1000); } catch { /* closing anyway */ }
    }
    const wasReady = this.isReady;
    this.isReady = false;
    this.authenticating = false;
    this.size = 0;
    for (const [id, p] of [...this.pending]) { // the calls that went out on ws; held ones wait
      if (p.ws === ws) this._settle(id, null, err);
    }
    if (wasReady) this.opts.onClose?.(this, err);
    if (this.closed || !this.opts.reconnect) {
      if (!this.closed) this._stop(err, code);
      for (const w of this._readyWaiters.splice(0)) w.reject(this.error);
      return;
    }
    // Exponential backoff with full jitter in its upper half.
    const base = Math.min(this.opts.backoffMax, this.opts.backoffMin * 2 ** this.attempt++);
    const delay = base / 2 + Math.random() * base / 2;
    this.timer = setTimeout(() => this._connect(), delay);
  }
}

// closedError is the error of a connection that closed with code and reason.
function closedError(code, reason) {
  const err = new RPCError('Closed', `connection closed (${code}${reason ? ' ' + reason : ''})`);
  err.code = code;
  return err;
}

/** connect returns a Client for url once it is ready. */
export async function connect(url, options) {
  const c = new Client(url, options);
  await c.ready();
  return c;
}
