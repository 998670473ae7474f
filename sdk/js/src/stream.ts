/**
 * `RTMStreamChannel` (api.md §4, R88–R115): one object per channel name (R88). The SDK
 * remembers what the app asked for — join options and the token in force, the topics
 * it publishes in, the publishers it follows — so that when the server session is lost
 * it rejoins the channel in one JoinRequest carrying all of it and the channel's last
 * position (the same recovery as message channels, as the Rust SDK). It also keeps the
 * topic publishers it has seen (SNAPSHOT, REMOTE_JOIN / REMOTE_LEAVE, its own roles).
 *
 * Each channel has its own link (`serviceType: 'STREAM'`, `affectedChannels = [name]`):
 * IDLE → CONNECTING (JOIN, or REJOIN after a failure) → CONNECTED (JOIN_SUCCESS) or
 * FAILED; `leave` → IDLE (LEAVE); logout → IDLE (LOGOUT); the server leaving the channel
 * (token expired) → FAILED / SERVER_REJECT / TOKEN_EXPIRED.
 */
import { create } from "@bufbuild/protobuf";
import { RTMBaseError, rtmError } from "./errors";
import {
  ChannelType as PbChannelType,
  JoinRequestSchema,
  JoinTopicRequestSchema,
  LeaveRequestSchema,
  LeaveTopicRequestSchema,
  PublishTopicMessageRequestSchema,
  RenewTokenRequestSchema,
  StreamPositionSchema,
  SubscribeTopicRequestSchema,
  TopicPriority,
  TopicQos,
  UnsubscribeTopicRequestSchema,
  type JoinRequest,
  type JoinTopicRequest,
  type TopicFailure,
} from "./gen/switchboard/v1/switchboard_pb";
import type { Connection } from "./conn";
import { checkCustomType, checkTopicName, checkUserId } from "./names";
import type { RTMClient } from "./client";
import { idempotencyKey, unexpected, withTimeout } from "./client";
import { num } from "./params";
import { linkEvent, pos } from "./session";
import { precheckToken } from "./token";
import type {
  GetSubscribedUserListResponse,
  JoinChannelResponse,
  JoinOptions,
  JoinTopicResponse,
  LeaveChannelResponse,
  LeaveTopicResponse,
  PublishTopicMessageOptions,
  PublishTopicMessageResponse,
  RTMEvents,
  RenewTokenResponse,
  SubscribeTopicOptions,
  SubscribeTopicResponse,
  SubscribedFailedReason,
  UnsubscribeTopicOptions,
  UnsubscribeTopicResponse,
  joinTopicOptions,
} from "./types";

type LinkState = RTMEvents.LinkState;
type Op = RTMEvents.LinkOperation;
type Reason = RTMEvents.LinkStateChangeReasonCode;

/** Status codes of topic subscriptions (§10.14). */
// eslint-disable-next-line @typescript-eslint/no-namespace
export namespace RTMStreamChannelStatusCode {
  /** Per-user result codes of subscribeTopic / unsubscribeTopic. */
  export enum SubscribeTopicErrorCode {
    NO_ERROR = 0,
    PARTIALLY_SUCCESSFUL = 1,
    ALL_FAILED = 2,
    UNKNOWN_ERROR = 3,
    INVALID_PARAMS = 4,
    REMOTE_USER_IS_NOT_PUBLISHED = 5,
    INVALID_REMOTE_USER = 6,
    TIMEOUT = 7,
    ALREADY_SUBSCRIBED_USER = 20001,
    SUB_USER_EXCEED_LIMITATION = 20003,
    NOT_SUBSCRIBED_USER = 20004,
  }
}

/** The link reason of a join refused with `code` (as the Rust SDK). */
function joinFailureReason(code: number): Reason {
  switch (code) {
    case -10009:
      return "TOKEN_EXPIRED";
    case -10005:
      return "INVALID_TOKEN";
    case -10016:
      return "INCONSISTENT_APP_ID";
    case -10008:
      return "INVALID_CHANNEL_NAME";
    case -11005:
      return "CHANNEL_INSTANCE_EXCEED_LIMITATION";
    case -11012:
      return "STREAM_CHANNEL_NOT_AVAILABLE";
    default:
      return "JOIN_FAILED";
  }
}

const QOS = { UNORDERED: TopicQos.UNORDERED, ORDERED: TopicQos.ORDERED } as const;
const PRIORITY = { HIGHEST: TopicPriority.HIGHEST, HIGH: TopicPriority.HIGH, NORMAL: TopicPriority.NORMAL, LOW: TopicPriority.LOW } as const;

/** A stream channel (§4). */
export class RTMStreamChannel {
  /** @internal */ link: LinkState = "IDLE";
  private epoch = 0;
  private options: Required<Omit<JoinOptions, "token">> = { withPresence: true, beQuiet: false, withMetadata: false, withLock: false };
  private token = "";
  private topics = new Map<string, JoinTopicRequest>();
  private followed = new Map<string, Set<string>>();
  private publishers = new Map<string, Map<string, string>>();
  /** Resolvers of joins waiting for the topic SNAPSHOT that follows their reply (R92). */
  private snapshotWaiters: Array<() => void> = [];

  /** @internal */
  constructor(
    private readonly client: RTMClient,
    /** @internal */ readonly name: string,
  ) {}

  /** @internal Moves this channel's link and emits the event. */
  transition(to: LinkState, op: Op, reason: Reason, text?: string): void {
    if (this.link === to) return;
    const ev = linkEvent(to, this.link, "STREAM", op, reason, [this.name], text ? { text } : {});
    this.link = to;
    this.client.emit("linkState", ev);
  }

  /** @internal Forgets the channel's session state and moves its link. */
  reset(to: LinkState, op: Op, reason: Reason, text?: string): void {
    this.epoch++;
    for (const done of this.snapshotWaiters.splice(0)) done();
    this.topics.clear();
    this.followed.clear();
    this.publishers.clear();
    this.client.positions.delete(PbChannelType.STREAM, this.name);
    this.transition(to, op, reason, text);
  }

  private joined(op: string): number {
    if (this.link !== "CONNECTED")
      throw rtmError(op, "RTM_ERROR_CHANNEL_NOT_JOINED", `stream channel ${this.name} is not joined (R96)`);
    return this.epoch;
  }

  /** A wait for this channel's next topic SNAPSHOT, armed now. */
  private nextSnapshot(): { arrived(ms: number): Promise<void>; cancel(): void } {
    let done!: () => void;
    const seen = new Promise<void>((resolve) => (done = resolve));
    this.snapshotWaiters.push(done);
    const cancel = () => {
      const i = this.snapshotWaiters.indexOf(done);
      if (i >= 0) this.snapshotWaiters.splice(i, 1);
      done();
    };
    return {
      cancel,
      async arrived(ms: number) {
        let t: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([seen, new Promise<void>((resolve) => (t = setTimeout(resolve, ms)))]);
        clearTimeout(t);
        cancel();
      },
    };
  }

  private joinRequest(): JoinRequest {
    return create(JoinRequestSchema, { channelName: this.name, token: this.token, ...this.options });
  }

  /** @internal Rejoins into a session that lacks the channel; what it came to. */
  async rejoin(conn: Connection, timeoutMs: number): Promise<"ok" | "gap" | "unrestored" | "failed"> {
    const since = this.client.positions.get(PbChannelType.STREAM, this.name);
    const req = this.joinRequest();
    if (since) req.since = create(StreamPositionSchema, since);
    req.topics = [...this.topics.values()];
    req.subscriptions = [...this.followed]
      .filter(([, users]) => users.size > 0)
      .map(([topic, users]) => create(SubscribeTopicRequestSchema, { channelName: this.name, topicName: topic, users: [...users] }));
    const epoch = this.epoch;
    let refusal: RTMBaseError;
    try {
      const r = await withTimeout(conn.call("join", { case: "join", value: req }), timeoutMs, "join");
      if (this.epoch !== epoch || this.link !== "CONNECTED") return "ok";
      if (r.case !== "join") throw unexpected("join");
      for (const f of r.value.restoreFailures) {
        this.client.log.warn(`rejoin of ${this.name} could not restore`, f.topicName, f.user, f.errorCode, f.reason);
        if (f.user && f.errorCode !== RTMStreamChannelStatusCode.SubscribeTopicErrorCode.ALREADY_SUBSCRIBED_USER) {
          const set = this.followed.get(f.topicName);
          set?.delete(f.user);
          if (set && set.size === 0) this.followed.delete(f.topicName);
        } else if (!f.user) this.topics.delete(f.topicName);
      }
      this.publishers.clear();
      return r.value.gap || !since ? "gap" : "ok";
    } catch (e) {
      if (this.epoch !== epoch || this.link !== "CONNECTED") return "ok";
      refusal = e instanceof RTMBaseError ? e : rtmError("join", "RTM_ERROR_CHANNEL_JOIN_FAILED", String(e));
      if (refusal.errorCode === -10025) return "unrestored";
    }
    if (refusal.errorCode === -10009) this.client.tokenWillExpire(this.name);
    this.reset("FAILED", "JOIN", joinFailureReason(refusal.errorCode), refusal.reason);
    return "unrestored";
  }

  /** @internal Keeps the topic publisher model current. */
  onTopicEvent(e: RTMEvents.TopicEvent): void {
    if (e.eventType === "SNAPSHOT") {
      // Resolved now, run after this event is emitted (a microtask): `join` resolves
      // after the app's topic listener saw the SNAPSHOT.
      for (const done of this.snapshotWaiters.splice(0)) done();
      this.publishers.clear();
      for (const t of e.topicInfos)
        this.publishers.set(t.topicName, new Map(t.publishers.map((p) => [p.publisherUserId, p.publisherMeta])));
      return;
    }
    for (const t of e.topicInfos) {
      let m = this.publishers.get(t.topicName);
      if (e.eventType === "REMOTE_JOIN") {
        if (!m) this.publishers.set(t.topicName, (m = new Map()));
        for (const p of t.publishers) m.set(p.publisherUserId, p.publisherMeta);
        if (t.publishers.length === 0 && e.publisher) m.set(e.publisher, "");
      } else if (m) {
        m.delete(e.publisher);
        for (const p of t.publishers) m.delete(p.publisherUserId);
        if (m.size === 0) this.publishers.delete(t.topicName);
      }
    }
  }


  /** Joins the channel (§4.1, R89–R92). */
  async join(options?: JoinOptions): Promise<JoinChannelResponse> {
    const op = "join";
    if (!this.client.serviceTypes.includes("STREAM"))
      throw rtmError(op, "RTM_ERROR_SERVICE_NOT_SUPPORTED", "privateConfig.serviceType lacks STREAM (R22)");
    const token = await precheckToken(options?.token, this.client.appId, op);
    if (token instanceof RTMBaseError) throw token;
    this.client.connected(op);
    const o = {
      withPresence: options?.withPresence ?? true,
      beQuiet: options?.beQuiet ?? false,
      withMetadata: options?.withMetadata ?? false,
      withLock: options?.withLock ?? false,
    };
    if (this.link === "CONNECTING")
      throw rtmError(op, "RTM_ERROR_DUPLICATE_OPERATION", `a join of ${this.name} is already in progress (R91)`);
    const fresh = this.link !== "CONNECTED";
    let epoch = this.epoch;
    if (fresh) {
      this.transition("CONNECTING", "JOIN", this.link === "IDLE" ? "JOIN" : "REJOIN");
      epoch = this.epoch;
    }
    const req = create(JoinRequestSchema, { channelName: this.name, token, ...o });
    // Armed before the request: the SNAPSHOT may be handled in the same tick as the reply.
    const snapshot = fresh ? this.nextSnapshot() : undefined;
    let r;
    try {
      r = await this.client.request(op, { case: "join", value: req });
      if (r.case !== "join") throw unexpected(op);
    } catch (e) {
      snapshot?.cancel();
      if (fresh && this.epoch === epoch) {
        const err = e as RTMBaseError;
        this.reset("FAILED", "JOIN", joinFailureReason(err.errorCode), err.reason);
      }
      throw e;
    }
    if (!fresh || !snapshot) return { timestamp: Number(r.value.timestamp), channelName: this.name };
    // R92: the reply is followed by the topic SNAPSHOT; `join` resolves after it was
    // emitted, so an app that registers its listener first sees the snapshot before it
    // uses the channel (bounded: a connection lost in between does not hang the join).
    // The reply's position is the baseline of what follows it, the snapshot included.
    if (this.epoch === epoch && r.value.position) this.client.positions.baseline(PbChannelType.STREAM, this.name, pos(r.value.position));
    await snapshot.arrived(num("REQUEST_TIMEOUT_MS", 10000));
    if (this.epoch !== epoch) throw rtmError(op, "RTM_ERROR_CHANNEL_JOIN_CANCELED", "cancelled by leave or logout");
    this.options = o;
    this.token = token;
    this.transition("CONNECTED", "JOIN", "JOIN_SUCCESS");
    return { timestamp: Number(r.value.timestamp), channelName: this.name };
  }

  /** Leaves the channel (§4.2, R94, R95). */
  async leave(): Promise<LeaveChannelResponse> {
    const op = "leave";
    if (this.link === "IDLE" || this.link === "FAILED")
      throw rtmError(op, "RTM_ERROR_CHANNEL_NOT_JOINED", `stream channel ${this.name} is not joined`);
    try {
      const r = await this.client.request(op, { case: "leave", value: create(LeaveRequestSchema, { channelName: this.name }) });
      if (r.case !== "leave") throw unexpected(op);
      this.reset("IDLE", "LEAVE", "LEAVE");
      return { timestamp: Number(r.value.timestamp), channelName: this.name };
    } catch (e) {
      if ((e as RTMBaseError).errorCode === -11001) this.reset("IDLE", "LEAVE", "LEAVE");
      throw e;
    }
  }

  /** Becomes a publisher of a topic (§4.3, R97–R100). */
  async joinTopic(topicName: string, options?: joinTopicOptions): Promise<JoinTopicResponse> {
    const op = "joinTopic";
    const bad = checkTopicName(topicName, op);
    if (bad) throw bad;
    const epoch = this.joined(op);
    const meta = options?.meta === undefined || options.meta === null ? "" : typeof options.meta === "string" ? options.meta : JSON.stringify(options.meta);
    const req = create(JoinTopicRequestSchema, {
      channelName: this.name,
      topicName,
      meta,
      qos: QOS[options?.qos ?? "UNORDERED"] ?? TopicQos.UNORDERED,
      priority: PRIORITY[options?.priority ?? "NORMAL"] ?? TopicPriority.NORMAL,
      syncWithMedia: options?.syncWithMedia === true,
    });
    const r = await this.client.request(op, { case: "joinTopic", value: req });
    if (r.case !== "joinTopic") throw unexpected(op);
    if (this.epoch === epoch && !this.topics.has(topicName)) {
      this.topics.set(topicName, req);
      let m = this.publishers.get(topicName);
      if (!m) this.publishers.set(topicName, (m = new Map()));
      m.set(this.client.userId, meta);
    }
    return { timestamp: Number(r.value.timestamp), topicName };
  }

  /** Stops being a publisher of a topic (§4.5, R101). */
  async leaveTopic(topicName: string): Promise<LeaveTopicResponse> {
    const op = "leaveTopic";
    const bad = checkTopicName(topicName, op);
    if (bad) throw bad;
    const epoch = this.joined(op);
    const forget = () => {
      if (this.epoch !== epoch) return;
      this.topics.delete(topicName);
      const m = this.publishers.get(topicName);
      m?.delete(this.client.userId);
      if (m && m.size === 0) this.publishers.delete(topicName);
    };
    try {
      const r = await this.client.request(op, { case: "leaveTopic", value: create(LeaveTopicRequestSchema, { channelName: this.name, topicName }) });
      if (r.case !== "leaveTopic") throw unexpected(op);
      forget();
      return { timestamp: Number(r.value.timestamp), topicName };
    } catch (e) {
      if ((e as RTMBaseError).errorCode === -11016) forget();
      throw e;
    }
  }

  /** Publishes in a joined topic (§4.4, R102, R103). */
  async publishTopicMessage(topicName: string, message: string | Uint8Array, options?: PublishTopicMessageOptions): Promise<PublishTopicMessageResponse> {
    const op = "publishTopicMessage";
    const bad = checkTopicName(topicName, op) ?? checkCustomType(options?.customType, op);
    if (bad) throw bad;
    this.joined(op);
    const wire = await this.client.encode(op, message);
    const req = create(PublishTopicMessageRequestSchema, {
      channelName: this.name,
      topicName,
      messageType: wire.messageType,
      payload: wire.payload,
      customType: options?.customType ?? "",
      sendTs: BigInt(Math.max(0, Math.floor(options?.sendTs ?? 0))),
      idempotencyKey: idempotencyKey(),
    });
    // Kept while reconnecting and resent with the same key after a cut that lost the
    // reply (R59): the server delivers a key once, so the message arrives exactly once.
    const r = await this.client.request(op, { case: "publishTopicMessage", value: req }, { retry: true });
    if (r.case !== "publishTopicMessage") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp), topicName };
  }

  private failures(failed: TopicFailure[], topicName: string, timestamp: number): SubscribedFailedReason[] {
    return failed.map((f) => ({ user: f.user, errorCode: f.errorCode, reason: f.reason, topicName, timestamp }));
  }

  /** Follows publishers of a topic (§4.6, R105–R111). */
  async subscribeTopic(topicName: string, options?: SubscribeTopicOptions): Promise<SubscribeTopicResponse> {
    const op = "subscribeTopic";
    const bad = checkTopicName(topicName, op);
    if (bad) throw bad;
    const epoch = this.joined(op);
    const users = options?.users ?? [];
    if (!Array.isArray(users)) throw rtmError(op, "RTM_ERROR_CHANNEL_INVALID_USER_LIST", "users must be an array of user ids");
    const req = create(SubscribeTopicRequestSchema, { channelName: this.name, topicName, users: users.map(String) });
    const r = await this.client.request(op, { case: "subscribeTopic", value: req });
    if (r.case !== "subscribeTopic") throw unexpected(op);
    if (this.epoch === epoch && r.value.succeedUsers.length) {
      let set = this.followed.get(topicName);
      if (!set) this.followed.set(topicName, (set = new Set()));
      for (const u of r.value.succeedUsers) set.add(u);
    }
    const timestamp = Number(r.value.timestamp);
    const failedDetails = this.failures(r.value.failed, topicName, timestamp);
    return { timestamp, topicName, succeedUsers: [...r.value.succeedUsers], failedUsers: failedDetails.map((f) => f.user), failedDetails };
  }

  /** Stops following publishers (or the whole topic) (§4.7, R112, R113). */
  async unsubscribeTopic(topicName: string, options?: UnsubscribeTopicOptions): Promise<UnsubscribeTopicResponse> {
    const op = "unsubscribeTopic";
    const bad = checkTopicName(topicName, op);
    if (bad) throw bad;
    const epoch = this.joined(op);
    const users = (options?.users ?? []).filter((u) => !checkUserId(u, op));
    const forget = (all: boolean) => {
      if (this.epoch !== epoch) return;
      if (all || users.length === 0) this.followed.delete(topicName);
      else {
        const set = this.followed.get(topicName);
        for (const u of users) set?.delete(u);
        if (set && set.size === 0) this.followed.delete(topicName);
      }
    };
    try {
      const r = await this.client.request(op, {
        case: "unsubscribeTopic",
        value: create(UnsubscribeTopicRequestSchema, { channelName: this.name, topicName, users }),
      });
      if (r.case !== "unsubscribeTopic") throw unexpected(op);
      forget(false);
      return { timestamp: Number(r.value.timestamp) };
    } catch (e) {
      if ((e as RTMBaseError).errorCode === -11013) forget(true);
      throw e;
    }
  }

  /** The publishers followed in a topic, from local state (§4.8, R114). */
  getSubscribedUserList(topicName: string): GetSubscribedUserListResponse {
    return { timestamp: Date.now(), topicName, subscribed: [...(this.followed.get(topicName) ?? [])] };
  }

  /** @internal Renews this channel's RTC token (R40). */
  async renewToken(token: string): Promise<RenewTokenResponse> {
    const op = "renewToken";
    const checked = await precheckToken(token, this.client.appId, op);
    if (checked instanceof RTMBaseError) throw checked;
    const epoch = this.epoch;
    const r = await this.client.request(op, { case: "renewToken", value: create(RenewTokenRequestSchema, { token: checked, channelName: this.name }) });
    if (r.case !== "renewToken") throw unexpected(op);
    if (this.epoch === epoch) this.token = checked;
    return { timestamp: Number(r.value.timestamp) };
  }
}
