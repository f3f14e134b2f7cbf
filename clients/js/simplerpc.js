// simplerpc.js: a simplerpc client over WebSocket, for browsers and Node 20+.
// One WebSocket message carries one protocol frame (docs/PROTOCOL.md): the
// ASCII opcode, a JSON object, spaces up to the frame size the server
// announces in its first frame (-2). No dependencies, no build step.

const OP_FAILURE = -1, OP_SIZE = -2, OP_REQUEST = -3, OP_REPLY = -4,
  OP_REPLY_FAILURE = -5, OP_PING = -6, OP_PONG = -7, OP_GO_AWAY = -8;

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
 */
export class Client {
  constructor(url, options = {}) {
    this.url = url;
    this.opts = {
      reconnect: true, backoffMin: 100, backoffMax: 10000, callTimeout: 30000,
      pingInterval: 0, maxHeld: 1024, protocols: ['simplerpc'], ...options,
    };
    this.WS = this.opts.WebSocket ?? globalThis.WebSocket;
    if (!this.WS) throw new TypeError('simplerpc: no WebSocket: pass options.WebSocket (the ws package in Node 20)');
    this.handlers = new Map(); // opcode -> [fn]
    this.callHandlers = new Map(); // opcode -> fn
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.pings = new Map(); // t -> resolve
    this.held = []; // [op, data] sent while not ready
    this.nextID = 1;
    this.size = 0; // the frame size; 0 until the server's first frame
    this.closed = false;
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
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

  /** ready resolves once connected and the frame size is known. */
  ready() {
    if (this.size && this._isOpen()) return Promise.resolve();
    if (this.closed) return Promise.reject(new RPCError('Closed', 'client closed'));
    return new Promise((resolve, reject) => this._readyWaiters.push({ resolve, reject }));
  }

  /** send sends data on op; held while disconnected (up to maxHeld frames). */
  send(op, data = {}) {
    if (this.closed) throw new RPCError('Closed', 'client closed');
    if (!this.size || !this._isOpen()) {
      if (this.held.length >= this.opts.maxHeld) throw new RPCError('Overloaded', 'too many frames held');
      this.held.push([op, data]);
      return;
    }
    this.ws.send(encodeFrame(op, data, this.size));
  }

  /** call sends a request on op and resolves with the reply's data, or rejects with an RPCError. */
  call(op, data = {}, { timeout = this.opts.callTimeout } = {}) {
    const id = this.nextID++;
    return new Promise((resolve, reject) => {
      const timer = timeout > 0 ? setTimeout(() => {
        this.pending.delete(id);
        reject(new RPCError('Timeout', `call ${op}: no reply within ${timeout} ms`));
      }, timeout) : null;
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.send(OP_REQUEST, { id, op, data });
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
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this._failAll(new RPCError('Closed', 'client closed'));
    for (const w of this._readyWaiters.splice(0)) w.reject(new RPCError('Closed', 'client closed'));
    if (this.ws) this.ws.close(code);
  }

  _isOpen() { return this.ws && this.ws.readyState === 1; }

  _connect() {
    const ws = new this.WS(this.url, this.opts.protocols);
    this.ws = ws;
    this.size = 0;
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (ev) => this._message(ev.data);
    ws.onclose = (ev) => this._closed(ws, ev);
    ws.onerror = () => {}; // onclose follows
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
      case OP_REQUEST: return this._request(data);
      case OP_REPLY: return this._settle(data.id, data.data ?? {}, null);
      case OP_REPLY_FAILURE: return this._settle(data.id, null, new RPCError(data.reason, data.message));
      case OP_PING: return this._isOpen() && this.ws.send(encodeFrame(OP_PONG, data, this.size));
      case OP_PONG: {
        const done = this.pings.get(data.t);
        if (done) { this.pings.delete(data.t); done(Date.now() - Math.floor(data.t / 1000)); }
        return;
      }
      case OP_GO_AWAY: return this.ws.close(1000); // and reconnect
      default: this._emit(op, data);
    }
  }

  _size(n) {
    if (!this.size) {
      this.size = n; // the announcement: never answered (PROTOCOL.md §3)
      this.attempt = 0;
      if (this.opts.pingInterval > 0) {
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.ping().catch(() => this.ws.close(4000)), this.opts.pingInterval);
      }
      for (const [op, data] of this.held.splice(0)) {
        try { this.ws.send(encodeFrame(op, data, this.size)); } catch (e) {
          if (op === OP_REQUEST) this._settle(data.id, null, e);
        }
      }
      for (const w of this._readyWaiters.splice(0)) w.resolve();
      this.opts.onOpen?.(this);
      return;
    }
    if (n !== this.size) {
      this.ws.send(encodeFrame(OP_SIZE, { message_size: n }, this.size));
      this.size = n;
    }
  }

  async _request({ id, op, data }) {
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
    if (!this._isOpen()) return; // the call died with its connection
    try {
      this.ws.send(encodeFrame(frame[0], frame[1], this.size));
    } catch (e) {
      this.ws.send(encodeFrame(OP_REPLY_FAILURE, { id, reason: 'InternalError', message: 'reply too large' }, this.size));
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

  _failAll(err) {
    for (const id of [...this.pending.keys()]) this._settle(id, null, err);
  }

  _closed(ws, ev) {
    if (ws !== this.ws) return;
    clearInterval(this.pinger);
    const err = new RPCError('Closed', `connection closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
    err.code = ev.code;
    this._failAll(err);
    const wasOpen = this.size > 0;
    this.size = 0;
    if (wasOpen) this.opts.onClose?.(this, err);
    if (this.closed || !this.opts.reconnect) {
      this.closed = true;
      for (const w of this._readyWaiters.splice(0)) w.reject(err);
      return;
    }
    // Exponential backoff with full jitter in its upper half.
    const base = Math.min(this.opts.backoffMax, this.opts.backoffMin * 2 ** this.attempt++);
    const delay = base / 2 + Math.random() * base / 2;
    this.timer = setTimeout(() => this._connect(), delay);
  }
}

/** connect returns a Client for url once it is ready. */
export async function connect(url, options) {
  const c = new Client(url, options);
  await c.ready();
  return c;
}
