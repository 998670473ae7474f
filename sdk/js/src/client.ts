/**
 * `RTMClient` (api.md §3) and its login link state machine (§11), the same as the Rust
 * SDK's: login (or resume) on a connection, noticing its loss (keep-alive or close),
 * reconnecting with full-jitter backoff (DISCONNECTED → CONNECTING → … → SUSPENDED after
 * `SUSPEND_AFTER_MS`), resuming the server session with the last positions, or — when it
 * is gone — starting a new one and re-subscribing every channel and rejoining every
 * stream channel from its last position, so the app misses nothing the server still has;
 * and delivering every positioned push once, in order (duplicates of a replay dropped).
 */
import { create } from "@bufbuild/protobuf";
import { EventBase } from "./emitter";
import { RTMBaseError, rtmError } from "./errors";
import type { ErrorName } from "./gen/codes";
import {
  ChannelType as PbChannelType,
  ChannelPositionSchema,
  LockEventType as PbLockEventType,
  LoginRequestSchema,
  LogoutRequestSchema,
  MessageType as PbMessageType,
  PresenceEventType as PbPresenceEventType,
  PublishRequestSchema,
  RenewTokenRequestSchema,
  StreamPositionSchema,
  SubscribeRequestSchema,
  SubscribeUserMetadataRequestSchema,
  TopicEventType as PbTopicEventType,
  UnsubscribeRequestSchema,
  type LoginReply,
  type MessagePush,
  type ServerMessage,
} from "./gen/switchboard/v1/switchboard_pb";
import { Connection, openSocket, type Ended, type ReplyBody, type RequestBody } from "./conn";
import { PayloadCipher } from "./crypto";
import { checkAppId, checkChannelName, checkCustomType, checkUserId, payloadOf } from "./names";
import { getParameter, num } from "./params";
import {
  Positions,
  channelTypeName,
  linkEvent,
  lockEvent,
  pos,
  presenceEvent,
  storageEvent,
  topicEvent,
} from "./session";
import { precheckToken } from "./token";
import { endpointUrl } from "./transport";
import type {
  LoginOptions,
  LoginResponse,
  LogoutResponse,
  PublishOptions,
  PublishResponse,
  RTMConfig,
  RTMEvents,
  RenewTokenOptions,
  RenewTokenResponse,
  ServiceType,
  SubscribeOptions,
  SubscribeResponse,
  UnsubscribeResponse,
} from "./types";
import { RTMHistory } from "./history";
import { RTMLock } from "./lock";
import { RTMPresence } from "./presence";
import { RTMStorage } from "./storage";
import { RTMStreamChannel } from "./stream";
import { dbg, type Logger, makeLogger } from "./log";

declare const __SB_VERSION__: string;

type LinkState = RTMEvents.LinkState;
type Op = RTMEvents.LinkOperation;
type Reason = RTMEvents.LinkStateChangeReasonCode;

const LIVE = new Map<string, RTMClient>();

const DISCONNECT: Record<number, { reconnect: boolean; reason: Reason }> = {
  4000: { reconnect: false, reason: "LOGOUT" },
  4001: { reconnect: false, reason: "SAME_UID_LOGIN" },
  4002: { reconnect: false, reason: "TOKEN_EXPIRED" },
  4003: { reconnect: false, reason: "KICKED_OUT_BY_SERVER" },
  4004: { reconnect: true, reason: "CONNECTION_ERROR" },
  4005: { reconnect: true, reason: "KEEP_ALIVE_TIMEOUT" },
  4006: { reconnect: true, reason: "CONNECTION_ERROR" },
  4007: { reconnect: false, reason: "CONNECTION_ERROR" },
  4008: { reconnect: false, reason: "CONNECTION_ERROR" },
  4009: { reconnect: true, reason: "LOGIN_TIMEOUT" },
  4010: { reconnect: false, reason: "LOGIN_REJECTED" },
  4011: { reconnect: true, reason: "CONNECTION_ERROR" },
  4012: { reconnect: true, reason: "CONNECTION_ERROR" },
  4013: { reconnect: true, reason: "KEEP_ALIVE_TIMEOUT" },
};

/** The link reason of a login refused with `code` (as the Rust SDK). */
export function loginFailureReason(code: number): Reason {
  switch (code) {
    case -10005:
      return "INVALID_TOKEN";
    case -10009:
      return "TOKEN_EXPIRED";
    case -10016:
      return "INCONSISTENT_APP_ID";
    case -10006:
      return "INVALID_USER_ID";
    case -10015:
      return "LOGIN_NOT_AUTHORIZED";
    case -19008:
      return "SAME_UID_LOGIN";
    case -10021:
      return "LOGIN_TOO_FREQUENT";
    default:
      return "LOGIN_REJECTED";
  }
}

/** Whether a login failure is worth retrying (network, timeouts). */
function retryable(e: RTMBaseError): boolean {
  return [-10011, -10013, -10025, -19002, -19003, -19005, -19006].includes(e.errorCode);
}

/** The timeout code of an operation (§12.3). */
export function timeoutCode(op: string): ErrorName {
  if (["whoNow", "getOnlineUsers", "whereNow", "getUserChannels", "setState", "getState", "removeState"].includes(op))
    return "RTM_ERROR_PRESENCE_OPERATION_TIMEOUT";
  if (op === "publish" || op === "publishTopicMessage") return "RTM_ERROR_CHANNEL_PUBLISH_MESSAGE_TIMEOUT";
  if (op === "subscribe" || op === "subscribeTopic") return "RTM_ERROR_CHANNEL_SUBSCRIBE_TIMEOUT";
  if (op === "join") return "RTM_ERROR_CHANNEL_JOIN_FAILED";
  if (op === "renewToken") return "RTM_ERROR_RENEW_TOKEN_TIMEOUT";
  if (/Metadata$/.test(op)) return "RTM_ERROR_STORAGE_OPERATION_TIMEOUT";
  if (/Lock$/.test(op)) return "RTM_ERROR_LOCK_OPERATION_TIMEOUT";
  if (op === "getMessages") return "RTM_ERROR_HISTORY_OPERATION_TIMEOUT";
  if (op === "login") return "RTM_ERROR_LOGIN_TIMEOUT";
  return "RTM_ERROR_NOT_CONNECTED";
}

function clamp(v: unknown, lo: number, hi: number, dflt: number): number {
  if (typeof v !== "number" || !Number.isFinite(v)) return dflt;
  return Math.min(hi, Math.max(lo, Math.round(v)));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Established {
  conn: Connection;
  reply: LoginReply;
}

/** Normalised subscription options (R78). */
export type SubOptions = Required<SubscribeOptions>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function b64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function unb64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The client (api.md §3). */
export class RTMClient extends EventBase<RTMEvents.RTMClientEventMapWithError> {
  /** Presence calls (§5). */
  presence: RTMPresence;
  /** Metadata calls (§6). */
  storage: RTMStorage;
  /** Lock calls (§7). */
  lock: RTMLock;
  /** History calls (§8). */
  history: RTMHistory;

  /** @internal */ readonly appId: string;
  /** @internal */ readonly userId: string;
  /** @internal */ readonly serviceTypes: ServiceType[];
  /** @internal */ readonly log: Logger;
  /** @internal */ readonly positions = new Positions();
  /** @internal */ link: LinkState = "IDLE";
  /** @internal */ conn: Connection | undefined;
  /** @internal */ generation = 0;
  /** @internal */ readonly subscriptions = new Map<string, SubOptions>();
  /** @internal */ readonly userMetadata = new Set<string>();
  /** @internal */ readonly streams = new Map<string, RTMStreamChannel>();
  private sessionId: string | undefined;
  private token = "";
  private lastChange: [Op, Reason] = ["LOGIN", "LOGIN"];
  private readonly hosts: string[];
  private hostIndex = 0;
  private readonly heartbeat: number;
  private readonly presenceTimeout: number;
  private readonly cipher: Promise<PayloadCipher> | undefined;
  private waiters: Array<() => void> = [];
  private cancels = new Set<() => void>();
  private netCancels = new Set<() => void>();
  private prechecking = 0;
  private logouts = 0;

  constructor(appId: string, userId: string, rtmConfig?: RTMConfig) {
    super();
    const cfg: RTMConfig = rtmConfig ?? {};
    const bad = checkAppId(appId, "constructor") ?? checkUserId(userId, "constructor", cfg.useStringUserId === false);
    if (bad) throw bad;
    this.appId = appId;
    this.userId = userId;
    this.log = makeLogger(cfg.logLevel ?? "error", `switchboard-rtm ${userId}`);
    this.onListenerError = (event, e) => this.log.error(`a '${event}' listener threw (ignored):`, e);
    const mode = cfg.encryptionMode ?? "NONE";
    if (!["NONE", "AES_128_GCM", "AES_256_GCM"].includes(mode))
      throw rtmError("constructor", "RTM_ERROR_INVALID_ENCRYPTION_PARAMETER", `unknown encryptionMode ${String(mode)}`);
    if (mode !== "NONE") {
      if (typeof cfg.cipherKey !== "string" || cfg.cipherKey.length === 0)
        throw rtmError("constructor", "RTM_ERROR_INVALID_ENCRYPTION_PARAMETER", "encryption needs a string cipherKey (R19)");
      if (cfg.salt !== undefined && !(cfg.salt instanceof Uint8Array))
        throw rtmError("constructor", "RTM_ERROR_INVALID_ENCRYPTION_PARAMETER", "salt must be a Uint8Array (R19)");
      if (cfg.salt && cfg.salt.length > 32)
        throw rtmError("constructor", "RTM_ERROR_INVALID_ENCRYPTION_PARAMETER", "salt is longer than 32 bytes (R19)");
      this.cipher = PayloadCipher.create(mode, cfg.cipherKey, cfg.salt);
      this.cipher.catch(() => {});
    }
    const pc = cfg.privateConfig;
    if (pc !== undefined) {
      if (
        !Array.isArray(pc.serviceType) ||
        pc.serviceType.length === 0 ||
        !Array.isArray(pc.accessPointHosts) ||
        pc.accessPointHosts.length === 0 ||
        !pc.accessPointHosts.every((h) => typeof h === "string" && h.length > 0)
      )
        throw rtmError("constructor", "RTM_ERROR_INVALID_PRIVATE_CONFIG", "privateConfig needs serviceType and accessPointHosts (R21)");
      this.serviceTypes = [...pc.serviceType];
      this.hosts = pc.accessPointHosts.map(endpointUrl);
    } else {
      this.serviceTypes = ["MESSAGE", "STREAM"];
      this.hosts = [];
    }
    const key = `${appId}\u0000${userId}`;
    const other = LIVE.get(key);
    if (other && other !== this && other.link !== "IDLE" && other.link !== "FAILED" && getParameter("ALLOW_DUPLICATE_USER_ID") !== true)
      throw rtmError("constructor", "RTM_ERROR_DUPLICATE_USER_ID", "another live client in this process uses this app id and user id (R14)");
    LIVE.set(key, this);
    this.heartbeat = clamp(num("HEART_BEAT", NaN), 1, 1800, clamp(cfg.heartbeatInterval, 5, 1800, 5));
    this.presenceTimeout = clamp(num("PRESENCE_TIMEOUT", NaN), 1, 300, clamp(cfg.presenceTimeout, 5, 300, 300));
    this.presence = new RTMPresence(this);
    this.storage = new RTMStorage(this);
    this.lock = new RTMLock(this);
    this.history = new RTMHistory(this);
    const w = (globalThis as { window?: { addEventListener?: (n: string, f: () => void) => void } }).window;
    w?.addEventListener?.("online", () => this.networkChanged());
  }

  /**
   * @internal The network came back (the browser's `online` event): a reconnect attempt
   * in progress is dropped and retried after 2 s (R51, NETWORK_CHANGE).
   */
  networkChanged(): void {
    for (const c of [...this.netCancels]) c();
  }

  // ---------------------------------------------------------------- link state

  /** @internal Moves the login link to `to` and emits the event. */
  transition(to: LinkState, op: Op, reason: Reason, extra: Parameters<typeof linkEvent>[6] = {}): void {
    const ev = linkEvent(to, this.link, "MESSAGE", op, reason, [...this.subscriptions.keys()], extra);
    this.link = to;
    this.lastChange = [op, reason];
    dbg(this.log, "link", ev);
    if (to === "CONNECTED" || to === "IDLE" || to === "FAILED") {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
    this.emit("linkState", ev);
  }

  /** @internal Ends the session (logout, FAILED): stream channels reset, positions cleared. */
  endSession(): void {
    this.subscriptions.clear();
    this.userMetadata.clear();
    this.sessionId = undefined;
    const conn = this.conn;
    this.conn = undefined;
    conn?.close();
    const [to, op, reason]: [LinkState, Op, Reason] =
      this.link === "IDLE" ? ["IDLE", "LOGOUT", "LOGOUT"] : ["FAILED", this.lastChange[0], this.lastChange[1]];
    for (const ch of this.streams.values()) if (ch.link !== "IDLE") ch.reset(to, op, reason);
    this.positions.clear();
  }

  private url(): string {
    const url = this.hosts[this.hostIndex % this.hosts.length];
    if (url === undefined) throw rtmError("login", "RTM_ERROR_INVALID_PRIVATE_CONFIG", "no access point: set privateConfig.accessPointHosts");
    return url;
  }

  /** Connects and logs in (resuming when `resume`) within the login timeout. */
  private async establish(resume: boolean): Promise<Established> {
    const timeoutMs = num("LOGIN_TIMEOUT_MS", 12000);
    const deadline = Date.now() + timeoutMs;
    let cancel: () => void = () => {};
    let netCancel: () => void = () => {};
    const cancelled = new Promise<never>((_, reject) => {
      cancel = () => reject(rtmError("login", "RTM_ERROR_LOGIN_CANCELED", "logout during login (R34)"));
      netCancel = () => reject(Object.assign(rtmError("login", "RTM_ERROR_LOGIN_ABORTED", "the network changed"), { networkChange: true }));
    });
    cancelled.catch(() => {});
    this.cancels.add(cancel);
    if (resume) this.netCancels.add(netCancel);
    let conn: Connection | undefined;
    try {
      const url = this.url();
      const opening = openSocket(url, timeoutMs, cancelled);
      const ws = await Promise.race([opening, cancelled]).catch((e: unknown) => {
        this.hostIndex++;
        // A socket that opens after the attempt was given up is closed at once.
        opening.then((late) => late.close(1000)).catch(() => {});
        throw e;
      });
      const holder: { conn?: Connection } = {};
      conn = new Connection(
        ws,
        this.heartbeat,
        (m) => this.onPush(m),
        (e) => {
          if (holder.conn) this.onEnded(holder.conn, e);
        },
        this.cipher ? (m) => this.predecrypt(m) : undefined,
      );
      holder.conn = conn;
      const login = create(LoginRequestSchema, {
        appId: this.appId,
        userId: this.userId,
        token: this.token,
        heartbeatInterval: this.heartbeat,
        presenceTimeout: this.presenceTimeout,
        sdk: `switchboard-rtm-js/${__SB_VERSION__}`,
      });
      if (resume) {
        login.sessionId = this.sessionId ?? "";
        const joined = new Set([...this.streams.values()].filter((c) => c.link === "CONNECTED").map((c) => c.name));
        login.positions = this.positions
          .entries()
          .filter((e) => e.type !== PbChannelType.STREAM || joined.has(e.name))
          .map((e) =>
            create(ChannelPositionSchema, {
              channelType: e.type,
              channelName: e.name,
              position: create(StreamPositionSchema, { epoch: e.pos.epoch, offset: e.pos.offset }),
            }),
          );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(rtmError("login", "RTM_ERROR_LOGIN_TIMEOUT", "no answer within the login timeout (R27)")),
          Math.max(0, deadline - Date.now()),
        );
      });
      try {
        const reply = await Promise.race([conn.call("login", { case: "login", value: login }), timeout, cancelled]);
        if (reply.case !== "login") throw rtmError("login", "RTM_ERROR_LOGIN_ABORTED", "unexpected reply to login");
        conn.setHeartbeat(reply.value.heartbeatInterval);
        return { conn, reply: reply.value };
      } finally {
        clearTimeout(timer);
      }
    } catch (e) {
      conn?.close();
      throw e;
    } finally {
      this.cancels.delete(cancel);
      this.netCancels.delete(netCancel);
    }
  }

  /** Makes `est` the live connection and remembers its session. */
  private adopt(est: Established): void {
    this.conn = est.conn;
    this.sessionId = est.reply.sessionId;
    if (est.reply.userPosition) this.positions.baseline(PbChannelType.USER, this.userId, pos(est.reply.userPosition));
  }

  /** A connection ended: report it and reconnect unless it was final. */
  private onEnded(conn: Connection, ended: Ended): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    let again: boolean;
    let reason: Reason;
    let text: string | undefined;
    if (ended.kind === "closed") {
      const row = DISCONNECT[ended.code] ?? { reconnect: false, reason: "CONNECTION_ERROR" as Reason };
      again = row.reconnect;
      reason = row.reason;
      text = ended.reason;
    } else if (ended.kind === "client") return;
    else {
      again = true;
      reason = "KEEP_ALIVE_TIMEOUT";
    }
    if (!again) {
      // §9.8: a session ended by its token's expiry also gets a token event.
      if (reason === "TOKEN_EXPIRED")
        this.emit("token", {
          eventType: "WILL_EXPIRE",
          reason: "The token is about to expire",
          affectedResources: { messageChannels: [] },
          timestamp: Date.now(),
        });
      this.transition("FAILED", "SERVER_REJECT", reason, text ? { text } : {});
      this.endSession();
      return;
    }
    // R47: CONNECTED → DISCONNECTED, operation HEARTBEAT_TIMEOUT.
    this.transition("DISCONNECTED", "HEARTBEAT_TIMEOUT", reason, text ? { text } : {});
    void this.reconnect(this.generation);
  }

  private backoff(attempt: number): number {
    const base = num("RECONNECT_BASE_DELAY_MS", 500);
    const cap = num("RECONNECT_MAX_DELAY_MS", 10000);
    const ceiling = Math.max(1, Math.min(cap, base * 2 ** Math.min(attempt, 20)));
    return Math.floor(Math.random() * (ceiling + 1));
  }

  /** Reconnects until it succeeds, the link fails, or a logout / new login cancels it. */
  private async reconnect(generation: number): Promise<void> {
    const started = Date.now();
    const suspendAfter = num("SUSPEND_AFTER_MS", 115000);
    let retryNow = false;
    for (let attempt = 0; ; attempt++) {
      await sleep(retryNow ? 0 : this.backoff(attempt));
      retryNow = false;
      if (this.generation !== generation) return;
      this.transition("CONNECTING", "AUTO_RECONNECT", "AUTO_RECONNECT");
      let est: Established | undefined;
      try {
        est = await this.establish(true);
      } catch (err) {
        if (this.generation !== generation) return;
        const e = err as RTMBaseError;
        if ((e as { networkChange?: boolean }).networkChange) {
          // R51: the attempt is dropped and retried after 2 s.
          this.transition("DISCONNECTED", "NETWORK_CHANGE", "NETWORK_CHANGE");
          await sleep(2000);
          if (this.generation !== generation) return;
          attempt--;
          retryNow = true;
          continue;
        }
        if (e instanceof RTMBaseError && !retryable(e)) {
          if (e.errorCode === -10009) {
            // R44: an event; the link keeps trying with the token the app renews.
            this.tokenWillExpire("");
          } else {
            this.transition("FAILED", "SERVER_REJECT", loginFailureReason(e.errorCode), { text: e.reason });
            this.endSession();
            return;
          }
        }
      }
      if (est) {
        if (this.generation !== generation) {
          est.conn.close();
          return;
        }
        const resumed = est.reply.resumed;
        let unrestored: string[] = [];
        let gaps: string[] = [];
        if (resumed) {
          const lacking = est.reply.unrestoredChannels;
          if (lacking.length) [unrestored, gaps] = await this.restore(est.conn, lacking);
        } else {
          [unrestored, gaps] = await this.restore(est.conn, undefined);
          await this.resubscribeUserMetadata(est.conn);
        }
        gaps.push(...est.reply.gapChannels);
        if (this.generation !== generation) {
          est.conn.close();
          return;
        }
        if (!est.conn.ended) {
          this.adopt(est);
          this.transition("CONNECTED", "RECONNECTED", "RECONNECT_SUCCESS", {
            unrestored: [...new Set(unrestored)].sort(),
            gaps: [...new Set(gaps)].sort(),
            resumed,
          });
          // Seed 002's fresh topic SNAPSHOT of every joined stream channel after every
          // reconnect comes from the server: after a resume's replay (R60), or with a new
          // session's rejoin.
          return;
        }
      }
      if (this.generation !== generation) return;
      const suspended = Date.now() - started >= suspendAfter;
      this.transition(suspended ? "SUSPENDED" : "DISCONNECTED", suspended ? "AUTO_RECONNECT" : "SERVER_TIMEOUT", "RECONNECT_TIMEOUT");
    }
  }

  /** Restores channels a session lacks (all, or `only`): returns [unrestored, gaps]. */
  private async restore(conn: Connection, only: string[] | undefined): Promise<[string[], string[]]> {
    const unrestored: string[] = [];
    const gaps: string[] = [];
    const timeout = num("REQUEST_TIMEOUT_MS", 10000);
    for (const [name, o] of [...this.subscriptions]) {
      if (only && !only.includes(name)) continue;
      const since = this.positions.get(PbChannelType.MESSAGE, name);
      const req = create(SubscribeRequestSchema, {
        channelName: name,
        withMessage: o.withMessage,
        withPresence: o.withPresence,
        beQuiet: o.beQuiet,
        withMetadata: o.withMetadata,
        withLock: o.withLock,
      });
      if (since) req.since = create(StreamPositionSchema, since);
      try {
        const r = await withTimeout(conn.call("subscribe", { case: "subscribe", value: req }), timeout, "subscribe");
        if (r.case === "subscribe" && (r.value.gap || !since)) gaps.push(name);
      } catch {
        unrestored.push(name);
      }
    }
    for (const ch of this.streams.values()) {
      if (ch.link !== "CONNECTED" || (only && !only.includes(ch.name))) continue;
      const r = await ch.rejoin(conn, timeout);
      if (r === "gap") gaps.push(ch.name);
      else if (r === "unrestored") unrestored.push(ch.name);
    }
    return [unrestored, gaps];
  }

  private async resubscribeUserMetadata(conn: Connection): Promise<void> {
    const timeout = num("REQUEST_TIMEOUT_MS", 10000);
    for (const user of [...this.userMetadata]) {
      try {
        await withTimeout(
          conn.call("subscribeUserMetadata", {
            case: "subscribeUserMetadata",
            value: create(SubscribeUserMetadataRequestSchema, { userId: user }),
          }),
          timeout,
          "subscribeUserMetadata",
        );
      } catch (e) {
        if ((e as RTMBaseError).errorCode === -10025) return;
        this.log.warn(`re-subscribing the metadata of ${user} failed:`, e);
        if ((e as RTMBaseError).errorCode !== -12018) this.userMetadata.delete(user);
      }
    }
  }

  // ---------------------------------------------------------------- pushes

  /** @internal Emits the will-expire notice and token event (R38, R39). */
  tokenWillExpire(channelName: string): void {
    this.emit("tokenPrivilegeWillExpire", channelName);
    this.emit("token", {
      eventType: "WILL_EXPIRE",
      reason: "The token is about to expire",
      affectedResources: { messageChannels: channelName ? [channelName] : [] },
      timestamp: Date.now(),
    });
  }

  private onPush(msg: ServerMessage): void | Promise<void> {
    const b = msg.body;
    switch (b.case) {
      case "message":
        return this.onMessage(b.value);
      case "topic": {
        const e = topicEvent(b.value);
        if (!e) return;
        const positioned = b.value.eventType !== PbTopicEventType.SNAPSHOT && (b.value.position?.offset ?? 0n) > 0n;
        const p = pos(b.value.position);
        if (positioned) {
          if (!this.positions.isNew(PbChannelType.STREAM, e.channelName, p)) return;
          this.positions.record(PbChannelType.STREAM, e.channelName, p);
        }
        this.streams.get(e.channelName)?.onTopicEvent(e);
        this.emit("topic", e);
        return;
      }
      case "presence": {
        const e = presenceEvent(b.value);
        if (!e) return;
        const positioned = b.value.eventType !== PbPresenceEventType.SNAPSHOT && (b.value.position?.offset ?? 0n) > 0n;
        if (positioned && !this.advance(b.value.channelType, e.channelName, pos(b.value.position))) return;
        this.emit("presence", e);
        return;
      }
      case "storage": {
        const e = storageEvent(b.value);
        const positioned =
          b.value.channelType !== PbChannelType.USER && e.eventType !== "SNAPSHOT" && (b.value.position?.offset ?? 0n) > 0n;
        if (positioned && !this.advance(b.value.channelType, e.channelName, pos(b.value.position))) return;
        this.emit("storage", e);
        return;
      }
      case "lock": {
        const e = lockEvent(b.value);
        if (!e) return;
        const positioned = b.value.eventType !== PbLockEventType.SNAPSHOT && (b.value.position?.offset ?? 0n) > 0n;
        if (positioned) {
          const [t, n] =
            b.value.eventType === PbLockEventType.EXPIRED ? [PbChannelType.USER, this.userId] : [b.value.channelType, e.channelName];
          if (!this.advance(t, n, pos(b.value.position))) return;
        }
        this.emit("lock", e);
        return;
      }
      case "channelLeft": {
        const c = b.value;
        if (c.channelType !== PbChannelType.STREAM) return;
        const ch = this.streams.get(c.channelName);
        if (!ch || (ch.link !== "CONNECTED" && ch.link !== "CONNECTING")) return;
        const reason: Reason = c.code === -10009 ? "TOKEN_EXPIRED" : c.code === -10005 ? "INVALID_TOKEN" : "KICKED_OUT_BY_SERVER";
        ch.reset("FAILED", "SERVER_REJECT", reason, c.reason);
        return;
      }
      case "tokenWillExpire":
        this.tokenWillExpire(b.value.channelName);
        return;
      default:
        return;
    }
  }

  private advance(type: PbChannelType, name: string, p: ReturnType<typeof pos>): boolean {
    if (!this.positions.isNew(type, name, p)) return false;
    this.positions.record(type, name, p);
    return true;
  }

  /** Decryptions started when a frame is decoded, so they run while earlier ones wait. */
  private opened = new WeakMap<MessagePush, Promise<string | Uint8Array>>();

  private predecrypt(msg: ServerMessage): void {
    if (msg.body.case !== "message" || !this.cipher) return;
    const m = msg.body.value;
    const isString = m.messageType === PbMessageType.STRING;
    const p = this.cipher.then(async (c) => {
      const plain = await c.decrypt(isString ? unb64(decoder.decode(m.payload)) : m.payload);
      return isString ? decoder.decode(plain) : plain;
    });
    p.catch(() => {});
    this.opened.set(m, p);
  }

  private onMessage(m: MessagePush): void | Promise<void> {
    const p = pos(m.position);
    const name = m.channelType === PbChannelType.USER ? this.userId : m.channelName;
    if (!this.positions.isNew(m.channelType, name, p)) return;
    const isString = m.messageType === PbMessageType.STRING;
    const deliver = (message: string | Uint8Array) => {
      this.positions.record(m.channelType, name, p);
      this.emit("message", {
        channelType: channelTypeName(m.channelType),
        channelName: m.channelName,
        topicName: m.topicName,
        messageType: isString ? "STRING" : "BINARY",
        customType: m.customType,
        message,
        publisher: m.publisher,
        timestamp: Number(m.timestamp),
      });
    };
    if (!this.cipher) {
      if (!isString) return deliver(m.payload.slice());
      let text: string;
      try {
        text = decoder.decode(m.payload);
      } catch {
        return deliver(m.payload.slice());
      }
      return deliver(text);
    }
    const opened =
      this.opened.get(m) ??
      this.cipher.then(async (c) => {
        const plain = await c.decrypt(isString ? unb64(decoder.decode(m.payload)) : m.payload);
        return isString ? decoder.decode(plain) : plain;
      });
    return opened
      .then((plain) => deliver(plain))
      .catch((err: unknown) => {
        // Never delivered as garbage: consumed (its position recorded, a replay does
        // not bring it back) and reported on the `error` event.
        this.positions.record(m.channelType, name, p);
        const error = rtmError("decrypt", "RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED", `a received payload did not decrypt: ${String(err)}`);
        this.log.warn(error.message);
        this.emit("error", {
          error,
          channelType: channelTypeName(m.channelType),
          channelName: m.channelName,
          topicName: m.topicName,
          publisher: m.publisher,
          timestamp: Number(m.timestamp),
        });
      });
  }

  /** @internal A stored (history) payload for the app; `undefined` when it does not decrypt. */
  async openStored(payload: Uint8Array, isString: boolean): Promise<string | Uint8Array | undefined> {
    try {
      if (!this.cipher) return isString ? decoder.decode(payload) : payload.slice();
      const c = await this.cipher;
      const plain = await c.decrypt(isString ? unb64(decoder.decode(payload)) : payload);
      return isString ? decoder.decode(plain) : plain;
    } catch {
      if (!this.cipher) return payload.slice();
      this.log.warn("a stored message did not decrypt; left out of getMessages");
      return undefined;
    }
  }

  /** @internal The wire form of a payload (encrypted when configured). */
  async encode(op: string, message: unknown): Promise<{ messageType: PbMessageType; payload: Uint8Array }> {
    const p = payloadOf(message, op);
    if (p instanceof RTMBaseError) throw p;
    const messageType = p.binary ? PbMessageType.BINARY : PbMessageType.STRING;
    if (!this.cipher) return { messageType, payload: p.bytes };
    let sealed: Uint8Array;
    try {
      sealed = await (await this.cipher).encrypt(p.bytes);
    } catch (e) {
      throw rtmError(op, "RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED", `encryption failed: ${String(e)}`);
    }
    // A STRING payload must be UTF-8 on the wire: the sealed bytes travel as base64 text.
    return { messageType, payload: p.binary ? sealed : encoder.encode(b64(sealed)) };
  }

  // ---------------------------------------------------------------- requests

  /** @internal Waits (up to `deadline`) for the link to be CONNECTED. */
  private waitConnected(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.max(0, deadline - Date.now()));
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  /** @internal Fails with −10002 / −10025 unless logged in and connected. */
  connected(op: string): void {
    if (this.conn && this.link === "CONNECTED") return;
    if (this.link === "IDLE" || this.link === "FAILED") throw rtmError(op, "RTM_ERROR_NOT_LOGIN", "not logged in (R24)");
    throw rtmError(op, "RTM_ERROR_NOT_CONNECTED", "reconnecting; try again when CONNECTED");
  }

  /**
   * @internal One request with the request timeout. With `retry` (channel, user and
   * topic publishes, which carry an idempotency key) it waits for a reconnect and resends
   * the same request, key included, until the deadline (R59).
   */
  async request(
    op: string,
    body: RequestBody,
    opts: { timeoutMs?: number | null; retry?: boolean } = {},
  ): Promise<ReplyBody> {
    const timeoutMs = opts.timeoutMs === undefined ? num("REQUEST_TIMEOUT_MS", 10000) : opts.timeoutMs;
    const deadline = timeoutMs === null ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      if (opts.retry && !(this.conn && this.link === "CONNECTED") && this.link !== "IDLE" && this.link !== "FAILED") {
        if (Date.now() >= deadline) throw rtmError(op, timeoutCode(op), "no reply within the request timeout");
        await this.waitConnected(deadline);
        continue;
      }
      this.connected(op);
      const conn = this.conn as Connection;
      try {
        const call = conn.call(op, body);
        return timeoutMs === null ? await call : await withTimeout(call, deadline - Date.now(), op);
      } catch (e) {
        if (opts.retry && (e as RTMBaseError).errorCode === -10025 && Date.now() < deadline) continue;
        throw e;
      }
    }
  }

  // ---------------------------------------------------------------- API

  /** Logs in (§3.1). */
  async login(options?: LoginOptions): Promise<LoginResponse> {
    if (!this.serviceTypes.includes("MESSAGE"))
      throw rtmError("login", "RTM_ERROR_SERVICE_NOT_SUPPORTED", "privateConfig.serviceType lacks MESSAGE (R22)");
    if (this.hosts.length === 0)
      throw rtmError("login", "RTM_ERROR_INVALID_PRIVATE_CONFIG", "no access point: set privateConfig.accessPointHosts (README)");
    // R30, decided when the call is made (a login still checking its token counts).
    if (this.prechecking > 0 || this.link === "CONNECTING" || this.link === "CONNECTED")
      throw rtmError("login", "RTM_ERROR_DUPLICATE_OPERATION", "already logged in or logging in (R30)");
    const before = this.logouts;
    this.prechecking++;
    let token: string | RTMBaseError;
    try {
      token = await precheckToken(options?.token, this.appId, "login");
    } finally {
      this.prechecking--;
    }
    if (this.logouts !== before) throw rtmError("login", "RTM_ERROR_LOGIN_CANCELED", "logout during login (R34)");
    if (token instanceof RTMBaseError) throw token;
    let reason: Reason;
    // The state may have moved while the token was checked.
    const now = this.link as LinkState;
    if (now === "CONNECTING" || now === "CONNECTED")
      throw rtmError("login", "RTM_ERROR_DUPLICATE_OPERATION", "already logged in or logging in (R30)");
    if (this.link === "DISCONNECTED" || this.link === "SUSPENDED") {
      this.endSessionKeepingLink();
      reason = "RELOGIN";
    } else reason = "LOGIN";
    this.generation++;
    const generation = this.generation;
    this.token = token;
    this.sessionId = undefined;
    this.transition("CONNECTING", "LOGIN", reason);
    let est: Established;
    try {
      est = await this.establish(false);
    } catch (err) {
      if (this.generation !== generation)
        throw rtmError("login", "RTM_ERROR_LOGIN_CANCELED", "logout during login (R34)");
      const e = err instanceof RTMBaseError ? err : rtmError("login", "RTM_ERROR_LOGIN_ABORTED", String(err));
      if (e.errorCode === -10011) this.transition("DISCONNECTED", "SERVER_TIMEOUT", "LOGIN_TIMEOUT");
      else if (e.errorCode === -10013) this.transition("DISCONNECTED", "SERVER_TIMEOUT", "CONNECTION_ERROR", { text: e.reason });
      else this.transition("FAILED", "SERVER_REJECT", loginFailureReason(e.errorCode), { text: e.reason });
      throw e;
    }
    if (this.generation !== generation) {
      est.conn.close();
      throw rtmError("login", "RTM_ERROR_LOGIN_CANCELED", "logout during login (R34)");
    }
    if (est.conn.ended) {
      this.transition("DISCONNECTED", "SERVER_TIMEOUT", "CONNECTION_ERROR", { text: "connection lost right after login" });
      throw rtmError("login", "RTM_ERROR_LOGIN_ABORTED", "connection lost right after login");
    }
    this.adopt(est);
    this.transition("CONNECTED", "LOGIN", "LOGIN_SUCCESS");
    return { timestamp: Number(est.reply.timestamp) };
  }

  /** The app chose a fresh login over the SDK's reconnect: the old session ends. */
  private endSessionKeepingLink(): void {
    this.generation++;
    this.subscriptions.clear();
    this.userMetadata.clear();
    this.sessionId = undefined;
    this.conn?.close();
    this.conn = undefined;
    for (const ch of this.streams.values()) if (ch.link !== "IDLE") ch.reset("FAILED", this.lastChange[0], this.lastChange[1]);
    this.positions.clear();
  }

  /** Logs out (§3.2, R32–R35). */
  async logout(): Promise<LogoutResponse> {
    if (this.link === "IDLE") {
      // A login still checking its token is cancelled too (R34).
      if (this.prechecking > 0) this.logouts++;
      return { timestamp: Date.now() };
    }
    this.generation++;
    this.logouts++;
    for (const c of [...this.cancels]) c();
    const conn = this.conn;
    this.conn = undefined;
    let timestamp = Date.now();
    if (conn && !conn.ended) {
      try {
        const r = await withTimeout(conn.call("logout", { case: "logout", value: create(LogoutRequestSchema) }), num("REQUEST_TIMEOUT_MS", 10000), "logout");
        if (r.case === "logout") timestamp = Number(r.value.timestamp);
      } catch {
        // the connection went away: logged out anyway
      }
      conn.close();
    }
    this.transition("IDLE", "LOGOUT", "LOGOUT");
    this.endSession();
    return { timestamp };
  }

  /** Publishes to a message channel or a user (§3.3). */
  async publish(channelName: string, message: string | Uint8Array, options?: PublishOptions): Promise<PublishResponse> {
    const op = "publish";
    const channelType = options?.channelType ?? "MESSAGE";
    if (channelType !== "MESSAGE" && channelType !== "USER")
      throw rtmError(op, "RTM_ERROR_INVALID_CHANNEL_TYPE", `publish takes channelType MESSAGE or USER, not ${String(channelType)} (R75)`);
    const bad = checkChannelName(channelName, op) ?? checkCustomType(options?.customType, op);
    if (bad) throw bad;
    const wire = await this.encode(op, message);
    const req = create(PublishRequestSchema, {
      channelType: channelType === "USER" ? PbChannelType.USER : PbChannelType.MESSAGE,
      channelName,
      messageType: wire.messageType,
      payload: wire.payload,
      customType: options?.customType ?? "",
      storeInHistory: options?.storeInHistory === true,
      idempotencyKey: idempotencyKey(),
    });
    const r = await this.request(op, { case: "publish", value: req }, { retry: true, timeoutMs: channelType === "USER" ? 13000 : num("REQUEST_TIMEOUT_MS", 10000) });
    if (r.case !== "publish") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp), channelName: r.value.channelName || channelName };
  }

  /** Subscribes to a message channel (§3.4). */
  async subscribe(channelName: string, options?: SubscribeOptions): Promise<SubscribeResponse> {
    const op = "subscribe";
    const bad = checkChannelName(channelName, op);
    if (bad) throw bad;
    const o: SubOptions = {
      withMessage: options?.withMessage ?? true,
      withPresence: options?.withPresence ?? true,
      beQuiet: options?.beQuiet ?? false,
      withMetadata: options?.withMetadata ?? false,
      withLock: options?.withLock ?? false,
    };
    const req = create(SubscribeRequestSchema, { channelName, ...o });
    const r = await this.request(op, { case: "subscribe", value: req });
    if (r.case !== "subscribe") throw unexpected(op);
    if (r.value.position) this.positions.baseline(PbChannelType.MESSAGE, channelName, pos(r.value.position));
    this.subscriptions.set(channelName, o);
    return { timestamp: Number(r.value.timestamp), channelName };
  }

  /** Unsubscribes from a message channel (§3.5). */
  async unsubscribe(channelName: string): Promise<UnsubscribeResponse> {
    const op = "unsubscribe";
    const bad = checkChannelName(channelName, op);
    if (bad) throw bad;
    const r = await this.request(op, { case: "unsubscribe", value: create(UnsubscribeRequestSchema, { channelName }) });
    if (r.case !== "unsubscribe") throw unexpected(op);
    this.subscriptions.delete(channelName);
    this.positions.delete(PbChannelType.MESSAGE, channelName);
    return { timestamp: Number(r.value.timestamp), channelName };
  }

  /** The stream channel object of `channelName` (§3.6, R88). */
  createStreamChannel(channelName: string): RTMStreamChannel {
    const bad = checkChannelName(channelName, "createStreamChannel");
    if (bad) throw bad;
    if (!this.serviceTypes.includes("STREAM"))
      throw rtmError("createStreamChannel", "RTM_ERROR_SERVICE_NOT_SUPPORTED", "privateConfig.serviceType lacks STREAM (R22)");
    let ch = this.streams.get(channelName);
    if (!ch) {
      ch = new RTMStreamChannel(this, channelName);
      this.streams.set(channelName, ch);
    }
    return ch;
  }

  /** Renews the login token, or a stream channel's RTC token with `channelName` (§3.7). */
  async renewToken(token: string, options?: RenewTokenOptions): Promise<RenewTokenResponse> {
    const op = "renewToken";
    const channelName = options?.channelName;
    if (channelName) {
      const ch = this.streams.get(channelName);
      if (!ch || ch.link !== "CONNECTED")
        throw rtmError(op, "RTM_ERROR_CHANNEL_NOT_JOINED", `stream channel ${channelName} is not joined`);
      return ch.renewToken(token);
    }
    const checked = await precheckToken(token, this.appId, op);
    if (checked instanceof RTMBaseError) throw checked;
    if ((this.link === "DISCONNECTED" || this.link === "SUSPENDED" || this.link === "CONNECTING") && !this.conn) {
      // Used by the next reconnect attempt.
      this.token = checked;
      return { timestamp: Date.now() };
    }
    const r = await this.request(op, { case: "renewToken", value: create(RenewTokenRequestSchema, { token: checked }) });
    if (r.case !== "renewToken") throw unexpected(op);
    this.token = checked;
    return { timestamp: Number(r.value.timestamp) };
  }
}

/** @internal The error of an unexpected reply. */
export function unexpected(op: string): RTMBaseError {
  return rtmError(op, "SB_ERROR_INTERNAL", "unexpected reply");
}

/** @internal `p`, or the timeout error of `op` after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, op: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(rtmError(op, timeoutCode(op), "no reply within the request timeout")), Math.max(0, ms));
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** @internal A fresh idempotency key for one publish (24 hex digits, random). */
export function idempotencyKey(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(12));
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
