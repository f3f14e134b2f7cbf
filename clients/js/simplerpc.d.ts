// Type declarations for simplerpc.js.

/** A failure the peer sent (-1, -5) or a local one; `reason` names its kind. */
export class RPCError extends Error {
  constructor(reason: string, message?: string);
  /** ArgumentMissing, ArgumentValueError, UnknownOpcode, Unauthorized, Timeout, Closed, FrameTooLarge, ... */
  reason: string;
  /** The WebSocket close code, for reason Closed. */
  code?: number;
}

/** Any JSON object: the payload of every frame. */
export type JSONObject = { [key: string]: unknown };

export interface ClientOptions {
  /** The WebSocket constructor; defaults to globalThis.WebSocket (pass the ws package's in Node 20). */
  WebSocket?: unknown;
  /** Reconnect after a drop. Defaults to true. */
  reconnect?: boolean;
  /** First reconnect delay in ms, doubled up to backoffMax, with jitter. Defaults to 100. */
  backoffMin?: number;
  /** Longest reconnect delay in ms. Defaults to 10000. */
  backoffMax?: number;
  /** Default call timeout in ms; 0 for none. Defaults to 30000. */
  callTimeout?: number;
  /**
   * Sent in a -9 frame as the first frame of every connection, for a server that requires
   * authentication: an object, or a function returning one (or a Promise of one), called for
   * each connection. Held frames go out once the server has acknowledged them. A refusal
   * stops the client for good (see Client.error). Defaults to none.
   */
  credentials?: JSONObject | (() => JSONObject | Promise<JSONObject>);
  /**
   * Time in ms for each connection attempt to become ready: the WebSocket open, the frame size
   * received and, with credentials, their acknowledgement. Past it the attempt is dropped
   * (an RPCError Timeout) and the next one follows the backoff; 0 for none. Defaults to 10000.
   */
  handshakeTimeout?: number;
  /** Ping every so many ms, closing (and reconnecting) when a ping fails; 0 for none. Defaults to 0. */
  pingInterval?: number;
  /** Frames held while disconnected. Defaults to 1024. */
  maxHeld?: number;
  /** WebSocket subprotocols offered. Defaults to ["simplerpc"]. */
  protocols?: string[];
  /** Runs each time a connection is ready (the frame size known and, with credentials, c.identity set). */
  onOpen?: (c: Client) => void;
  /** Runs each time a ready connection closes, and when the server refuses the credentials (err.reason Unauthorized; the client has stopped). */
  onClose?: (c: Client, err: RPCError) => void;
  /** Receives what an on() handler threw, and what a credentials function threw. */
  onError?: (err: unknown) => void;
}

export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  /** The frame size the server announced; 0 while not connected. */
  readonly size: number;
  /** The identity the server's last acknowledgement of the credentials named; "" before the first. */
  readonly identity: string;
  /** True while a connection is ready: sends go out at once. */
  readonly isReady: boolean;
  /** True once the client stopped for good: close(), a refusal of its credentials, or a drop with reconnect false. */
  readonly closed: boolean;
  /** Why the client stopped (an RPCError: Closed, Unauthorized, ...); null while it runs. */
  readonly error: RPCError | null;
  /** Registers fn for frames on op (>= 0, or -1 for failures). */
  on(op: number, fn: (data: JSONObject, c: Client) => void): this;
  /** Answers the server's calls on op with fn's value or Promise; a throw is a failure (its reason, or InternalError). */
  onCall(op: number, fn: (data: JSONObject, c: Client) => unknown | Promise<unknown>): this;
  /** Resolves once a connection is ready (authenticated, with credentials); rejects with error once the client stopped. */
  ready(): Promise<void>;
  /** Sends data on op; held while not ready. Throws an RPCError FrameTooLarge, Overloaded, or why the client stopped. */
  send(op: number, data?: JSONObject): void;
  /** Calls op and resolves with the reply's data; rejects with an RPCError. A call made while not ready waits for a connection, within its timeout; one in flight fails (Closed) if its connection drops. */
  call<T = JSONObject>(op: number, data?: JSONObject, options?: { timeout?: number }): Promise<T>;
  /** Pings the server and resolves with the round trip in ms. */
  ping(options?: { timeout?: number }): Promise<number>;
  /** Closes for good; pending calls reject with reason Closed. */
  close(code?: number): void;
}

/** Returns a Client for url once it is ready; rejects with the first error that stops it (a refusal: Unauthorized). */
export function connect(url: string, options?: ClientOptions): Promise<Client>;

/** Returns the frame for op and data, padded with spaces to size bytes (no padding for 0). */
export function encodeFrame(op: number, data: JSONObject, size: number): string;

/** Returns the opcode and object of a frame's text. */
export function decodeFrame(text: string): [number, JSONObject];
