/**
 * One connection (one login): owns the socket, numbers requests and matches replies,
 * batches the requests of one tick into one frame (length-delimited messages,
 * docs/protocol.md), sends a heartbeat every half interval and declares the link lost
 * after 1.5 intervals without server traffic. Inbound messages go through one ordered
 * queue: pushes are handed to the client (which may take time, e.g. to decrypt) and
 * replies are settled in arrival order after every push that came before them.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { decodeServerMessage } from "./gen/decode";
import { rtmError, serverError, type RTMBaseError } from "./errors";
import {
  ClientMessageSchema,
  HeartbeatSchema,
  type ClientMessage,
  type ServerMessage,
} from "./gen/switchboard/v1/switchboard_pb";
import { socketClass, type Socket } from "./transport";

/** A request body (`ClientMessage.body`). */
export type RequestBody = Exclude<ClientMessage["body"], { case: undefined }>;
/** A reply or push body (`ServerMessage.body`). */
export type ReplyBody = Exclude<ServerMessage["body"], { case: undefined }>;

/** How a connection ended. */
export type Ended =
  | { kind: "closed"; code: number; reason: string }
  | { kind: "keepalive" }
  | { kind: "lost" }
  | { kind: "client" };

interface Pending {
  resolve: (b: ReplyBody) => void;
  reject: (e: RTMBaseError) => void;
  op: string;
}

/** Called with each push; a returned promise holds later messages until it settles. */
export type PushHandler = (msg: ServerMessage) => void | Promise<void>;

function varint(n: number, out: number[]): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
}

/** Splits a frame into its length-delimited messages; throws on a malformed frame. */
export function splitFrame(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < data.length) {
    let len = 0;
    let shift = 0;
    for (;;) {
      if (at >= data.length) throw new Error("truncated length prefix");
      const b = data[at++] as number;
      len += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      shift += 7;
      if (shift > 35) throw new Error("length prefix too long");
    }
    if (at + len > data.length) throw new Error("truncated message");
    out.push(data.subarray(at, at + len));
    at += len;
  }
  return out;
}

/** Length-prefixes encoded messages into one frame. */
export function joinParts(parts: Uint8Array[]): Uint8Array {
  const prefix: number[] = [];
  let total = 0;
  const heads = parts.map((p) => {
    prefix.length = 0;
    varint(p.length, prefix);
    const h = Uint8Array.from(prefix);
    total += h.length + p.length;
    return h;
  });
  const out = new Uint8Array(total);
  let at = 0;
  parts.forEach((p, i) => {
    const h = heads[i] as Uint8Array;
    out.set(h, at);
    at += h.length;
    out.set(p, at);
    at += p.length;
  });
  return out;
}

/** Encodes messages into one frame. */
export function encodeFrame(msgs: ClientMessage[]): Uint8Array {
  return joinParts(msgs.map((m) => toBinary(ClientMessageSchema, m)));
}

function bytesOf(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) {
    const chunks = data as Uint8Array[];
    const total = chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
  return undefined;
}

/** Opens a WebSocket to `url` within `timeoutMs`. */
export async function openSocket(url: string, timeoutMs: number, abort?: Promise<never>): Promise<Socket> {
  const Ctor = await socketClass();
  return new Promise<Socket>((resolve, reject) => {
    let ws: Socket;
    try {
      ws = new Ctor(url);
    } catch (e) {
      reject(rtmError("login", "RTM_ERROR_LOGIN_ABORTED", `cannot connect to ${url}: ${String(e)}`));
      return;
    }
    ws.binaryType = typeof window === "undefined" && "terminate" in ws ? "nodebuffer" : "arraybuffer";
    const timer = setTimeout(() => {
      kill(ws);
      reject(rtmError("login", "RTM_ERROR_LOGIN_TIMEOUT", "no answer within the login timeout (R27)"));
    }, timeoutMs);
    abort?.catch((e: unknown) => {
      clearTimeout(timer);
      kill(ws);
      reject(e);
    });
    ws.onopen = () => {
      clearTimeout(timer);
      ws.onopen = ws.onerror = ws.onclose = null;
      resolve(ws);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      clearTimeout(timer);
      reject(rtmError("login", "RTM_ERROR_LOGIN_ABORTED", `cannot connect to ${url} (close ${ev?.code ?? ""})`));
    };
  });
}

/** Closes a socket at once (no close handshake wait on a frozen link). */
function kill(ws: Socket): void {
  try {
    const t = (ws as unknown as { terminate?: () => void }).terminate;
    if (typeof t === "function") t.call(ws);
    else ws.close(1000);
  } catch {
    // already closed
  }
}

/** A live connection. */
export class Connection {
  private pending = new Map<number, Pending>();
  private nextId = 0;
  private out: ClientMessage[] = [];
  private flushing = false;
  private lastRx = Date.now();
  private beat: ReturnType<typeof setInterval> | undefined;
  private watch: ReturnType<typeof setInterval> | undefined;
  private closing: { code: number; reason: string } | undefined;
  private inbox: ServerMessage[] = [];
  private head = 0;
  private draining = false;
  /** Whether the connection has ended. */
  ended = false;

  constructor(
    private readonly ws: Socket,
    private heartbeatSec: number,
    private readonly onPush: PushHandler,
    private readonly onEnded: (e: Ended) => void,
    private readonly onDecoded?: (msg: ServerMessage) => void,
  ) {
    ws.onmessage = (ev) => this.onFrame(ev.data);
    ws.onclose = () => this.end(this.closing ? { kind: "closed", ...this.closing } : { kind: "lost" });
    ws.onerror = () => {};
    this.startTimers();
  }

  /** Uses the server's effective heartbeat interval (seconds). */
  setHeartbeat(sec: number): void {
    if (sec > 0 && sec !== this.heartbeatSec) {
      this.heartbeatSec = sec;
      this.startTimers();
    }
  }

  private startTimers(): void {
    if (this.beat) clearInterval(this.beat);
    if (this.watch) clearInterval(this.watch);
    const ms = this.heartbeatSec * 1000;
    this.beat = setInterval(() => this.send({ case: "heartbeat", value: create(HeartbeatSchema) }, undefined), ms / 2);
    this.watch = setInterval(() => {
      if (Date.now() - this.lastRx >= ms * 1.5) this.end({ kind: "keepalive" });
    }, Math.max(50, ms / 8));
    for (const t of [this.beat, this.watch]) (t as { unref?: () => void }).unref?.();
  }

  /** Sends a request and waits for its reply (no timeout of its own). */
  call(op: string, body: RequestBody): Promise<ReplyBody> {
    if (this.ended) return Promise.reject(rtmError(op, "RTM_ERROR_NOT_CONNECTED", "connection closed"));
    return new Promise<ReplyBody>((resolve, reject) => {
      this.send(body, { resolve, reject, op });
    });
  }

  private send(body: RequestBody, pending: Pending | undefined): void {
    if (this.ended) return;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    if (pending) this.pending.set(this.nextId, pending);
    this.out.push(create(ClientMessageSchema, { id: this.nextId, body }));
    if (!this.flushing) {
      this.flushing = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushing = false;
    if (this.ended || this.out.length === 0) return;
    const batch = this.out;
    this.out = [];
    try {
      // At most 64 messages and about 64 KB per frame (the server's limits are 64
      // messages and 1 MiB; one message alone always fits).
      let chunk: Uint8Array[] = [];
      let bytes = 0;
      for (const m of batch) {
        const part = toBinary(ClientMessageSchema, m);
        if (chunk.length > 0 && (chunk.length === 64 || bytes + part.length > 64 * 1024)) {
          this.ws.send(joinParts(chunk));
          chunk = [];
          bytes = 0;
        }
        chunk.push(part);
        bytes += part.length;
      }
      if (chunk.length) this.ws.send(joinParts(chunk));
    } catch {
      this.end({ kind: "lost" });
    }
  }

  private onFrame(data: unknown): void {
    if (this.ended) return;
    this.lastRx = Date.now();
    const bytes = bytesOf(data);
    if (!bytes) return;
    try {
      for (const part of splitFrame(bytes)) {
        const msg = decodeServerMessage(part);
        // Recorded at once, so a close while pushes wait (decryption) still ends right.
        if (msg.body.case === "closing") this.closing = { code: msg.body.value.code, reason: msg.body.value.reason };
        else {
          this.inbox.push(msg);
          // Lets the client start work that may run ahead (decryption), in order of arrival.
          if (msg.id === 0) this.onDecoded?.(msg);
        }
      }
    } catch {
      this.end({ kind: "closed", code: 4007, reason: "undecodable frame from the server" });
      return;
    }
    if (!this.draining) this.drain();
  }

  private drain(): void {
    this.draining = true;
    while (this.head < this.inbox.length) {
      const msg = this.inbox[this.head++] as ServerMessage;
      if (msg.id !== 0) {
        this.settle(msg);
        continue;
      }
      let r: void | Promise<void>;
      try {
        r = this.onPush(msg);
      } catch {
        r = undefined;
      }
      if (r instanceof Promise) {
        r.catch(() => {}).then(() => (this.ended ? undefined : this.drain()));
        return;
      }
    }
    this.inbox = [];
    this.head = 0;
    this.draining = false;
  }

  private settle(msg: ServerMessage): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    const b = msg.body;
    if (b.case === "error") p.reject(serverError(p.op, b.value.code, b.value.reason, b.value.operation));
    else if (b.case === undefined) p.reject(rtmError(p.op, "SB_ERROR_INTERNAL", "empty reply"));
    else p.resolve(b);
  }

  private end(e: Ended): void {
    if (this.ended) return;
    this.ended = true;
    if (this.beat) clearInterval(this.beat);
    if (this.watch) clearInterval(this.watch);
    this.ws.onmessage = null;
    this.ws.onclose = null;
    kill(this.ws);
    for (const p of this.pending.values()) p.reject(rtmError(p.op, "RTM_ERROR_NOT_CONNECTED", "connection closed"));
    this.pending.clear();
    this.onEnded(e);
  }

  /** Ends the connection from the client side (logout, a newer login). */
  close(): void {
    this.end({ kind: "client" });
  }
}
