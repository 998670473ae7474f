/**
 * Shared pieces of the client's session state: link state event construction, stream
 * positions (the last position handed to the app per channel, R58), and the mapping of
 * server pushes to the app's event shapes (§9).
 */
import type { ChannelType } from "./types";
import type { RTMEvents } from "./types";
import { LinkStateChangeReasonDescription } from "./constants";
import {
  ChannelType as PbChannelType,
  LockEventType as PbLockEventType,
  PresenceEventType as PbPresenceEventType,
  StorageEventType as PbStorageEventType,
  StorageType as PbStorageType,
  TopicEventType as PbTopicEventType,
  type LockDetail as PbLockDetail,
  type Metadata,
  type PresenceEvent as PbPresenceEvent,
  type StorageEvent as PbStorageEvent,
  type LockEvent as PbLockEvent,
  type TopicEvent as PbTopicEvent,
  type StreamPosition,
  type UserState as PbUserState,
} from "./gen/switchboard/v1/switchboard_pb";
import type { LockDetail, StorageData, StateDetail } from "./types";

/** A position: (epoch, offset). */
export interface Pos {
  epoch: bigint;
  offset: bigint;
}

/** Positions of one client, by channel. */
export class Positions {
  private map = new Map<string, Pos>();

  private static key(type: PbChannelType, name: string): string {
    return `${type}\u0000${name}`;
  }

  /** Whether `pos` is newer than what the app has for the channel (same epoch). */
  isNew(type: PbChannelType, name: string, pos: Pos): boolean {
    const last = this.map.get(Positions.key(type, name));
    return !(last && last.epoch === pos.epoch && pos.offset <= last.offset);
  }

  /** Records `pos` as handed to the app. */
  record(type: PbChannelType, name: string, pos: Pos): void {
    this.map.set(Positions.key(type, name), pos);
  }

  /** Sets the starting position if there is none yet (a login/subscribe/join reply). */
  baseline(type: PbChannelType, name: string, pos: Pos): void {
    const k = Positions.key(type, name);
    if (!this.map.has(k)) this.map.set(k, pos);
  }

  /** The position of a channel. */
  get(type: PbChannelType, name: string): Pos | undefined {
    return this.map.get(Positions.key(type, name));
  }

  /** Forgets a channel. */
  delete(type: PbChannelType, name: string): void {
    this.map.delete(Positions.key(type, name));
  }

  /** Forgets everything. */
  clear(): void {
    this.map.clear();
  }

  /** Every entry. */
  entries(): Array<{ type: PbChannelType; name: string; pos: Pos }> {
    return [...this.map.entries()].map(([k, pos]) => {
      const i = k.indexOf("\u0000");
      return { type: Number(k.slice(0, i)) as PbChannelType, name: k.slice(i + 1), pos };
    });
  }
}

/** A wire position as a `Pos` (missing = 0/0). */
export function pos(p: StreamPosition | undefined): Pos {
  return p ? { epoch: p.epoch, offset: p.offset } : { epoch: 0n, offset: 0n };
}

/** The app's name of a wire channel type. */
export function channelTypeName(t: PbChannelType): ChannelType {
  return t === PbChannelType.USER ? "USER" : t === PbChannelType.STREAM ? "STREAM" : "MESSAGE";
}

/** The wire channel type of an app channel type. */
export function wireChannelType(t: ChannelType): PbChannelType {
  return t === "USER" ? PbChannelType.USER : t === "STREAM" ? PbChannelType.STREAM : PbChannelType.MESSAGE;
}

/** A link state event (§9.7) with the reason text of the code plus a detail. */
export function linkEvent(
  currentState: RTMEvents.LinkState,
  previousState: RTMEvents.LinkState,
  serviceType: "MESSAGE" | "STREAM",
  operation: RTMEvents.LinkOperation,
  reasonCode: RTMEvents.LinkStateChangeReasonCode,
  affectedChannels: string[],
  extra: { text?: string; unrestored?: string[]; gaps?: string[]; resumed?: boolean } = {},
): RTMEvents.LinkStateEvent {
  const base = LinkStateChangeReasonDescription[reasonCode];
  return {
    currentState,
    previousState,
    serviceType,
    operation,
    reason: extra.text ? `${base}: ${extra.text}` : base,
    reasonCode,
    affectedChannels,
    unrestoredChannels: extra.unrestored ?? [],
    gapChannels: extra.gaps ?? [],
    isResumed: extra.resumed ?? false,
    timestamp: Date.now(),
  };
}

function states(m: { [k: string]: string }): StateDetail {
  return { ...m };
}

function userStates(list: PbUserState[]): RTMEvents.UserState[] {
  return list.map((u) => ({ userId: u.userId, states: states(u.states), statesCount: Object.keys(u.states).length }));
}

const PRESENCE_TYPES: Record<number, RTMEvents.PresenceEvent["eventType"]> = {
  [PbPresenceEventType.SNAPSHOT]: "SNAPSHOT",
  [PbPresenceEventType.INTERVAL]: "INTERVAL",
  [PbPresenceEventType.REMOTE_JOIN]: "REMOTE_JOIN",
  [PbPresenceEventType.REMOTE_LEAVE]: "REMOTE_LEAVE",
  [PbPresenceEventType.REMOTE_TIMEOUT]: "REMOTE_TIMEOUT",
  [PbPresenceEventType.REMOTE_STATE_CHANGED]: "REMOTE_STATE_CHANGED",
  [PbPresenceEventType.ERROR_OUT_OF_SERVICE]: "ERROR_OUT_OF_SERVICE",
};

/** A presence push as the app's event; `undefined` for an unknown type. */
export function presenceEvent(p: PbPresenceEvent): RTMEvents.PresenceEvent | undefined {
  const eventType = PRESENCE_TYPES[p.eventType];
  if (!eventType || (p.channelType !== PbChannelType.MESSAGE && p.channelType !== PbChannelType.STREAM)) return undefined;
  const list = (u: string[]): RTMEvents.UserList => ({ users: [...u], userCount: u.length });
  const d = p.interval;
  return {
    eventType,
    channelType: channelTypeName(p.channelType),
    channelName: p.channelName,
    publisher: p.publisher,
    stateChanged: states(p.stateChanged),
    interval:
      eventType === "INTERVAL"
        ? {
            join: list(d?.join ?? []),
            leave: list(d?.leave ?? []),
            timeout: list(d?.timeout ?? []),
            userStateList: userStates(d?.userStateList ?? []),
            totalOccupancy: d?.totalOccupancy ?? 0,
          }
        : null,
    snapshot: eventType === "SNAPSHOT" ? userStates(p.snapshot) : null,
    timestamp: Number(p.timestamp),
  };
}

const TOPIC_TYPES: Record<number, RTMEvents.TopicEvent["eventType"]> = {
  [PbTopicEventType.SNAPSHOT]: "SNAPSHOT",
  [PbTopicEventType.REMOTE_JOIN]: "REMOTE_JOIN",
  [PbTopicEventType.REMOTE_LEAVE]: "REMOTE_LEAVE",
};

/** A topic push as the app's event. */
export function topicEvent(t: PbTopicEvent): RTMEvents.TopicEvent | undefined {
  const eventType = TOPIC_TYPES[t.eventType];
  if (!eventType) return undefined;
  const topicInfos = t.topics.map((info) => ({
    topicName: info.topicName,
    publishers: info.publishers.map((p) => ({ publisherUserId: p.userId, publisherMeta: p.meta })),
    totalPublisher: info.publishers.length,
  }));
  return { eventType, channelName: t.channelName, publisher: t.publisher, topicInfos, totalTopics: topicInfos.length, timestamp: Number(t.timestamp) };
}

/** Wire metadata as `StorageData`. */
export function storageData(m: Metadata | undefined): StorageData {
  const metadata: StorageData["metadata"] = {};
  for (const i of m?.items ?? [])
    metadata[i.key] = { value: i.value, revision: Number(i.revision), updated: Number(i.updated), authorUid: i.authorUid };
  return { totalCount: m ? m.totalCount : 0, majorRevision: m ? Number(m.majorRevision) : -1, metadata };
}

const STORAGE_EVENT_TYPES: Record<number, RTMEvents.StorageEvent["eventType"]> = {
  [PbStorageEventType.NONE]: "NONE",
  [PbStorageEventType.SET]: "SET",
  [PbStorageEventType.SNAPSHOT]: "SNAPSHOT",
  [PbStorageEventType.REMOVE]: "REMOVE",
  [PbStorageEventType.UPDATE]: "UPDATE",
};

/** A storage push as the app's event. */
export function storageEvent(s: PbStorageEvent): RTMEvents.StorageEvent {
  return {
    channelType: channelTypeName(s.channelType),
    channelName: s.channelName,
    publisher: s.publisher,
    storageType: s.storageType === PbStorageType.USER ? "USER" : s.storageType === PbStorageType.CHANNEL ? "CHANNEL" : "NONE",
    eventType: STORAGE_EVENT_TYPES[s.eventType] ?? "NONE",
    data: storageData(s.data),
    timestamp: Number(s.timestamp),
  };
}

/** A wire lock detail. */
export function lockDetail(l: PbLockDetail): LockDetail {
  return { lockName: l.lockName, owner: l.owner, ttl: l.ttl };
}

const LOCK_TYPES: Record<number, RTMEvents.LockEvent["eventType"]> = {
  [PbLockEventType.SNAPSHOT]: "SNAPSHOT",
  [PbLockEventType.SET]: "SET",
  [PbLockEventType.REMOVED]: "REMOVED",
  [PbLockEventType.ACQUIRED]: "ACQUIRED",
  [PbLockEventType.RELEASED]: "RELEASED",
  [PbLockEventType.EXPIRED]: "EXPIRED",
};

/** A lock push as the app's event. */
export function lockEvent(l: PbLockEvent): RTMEvents.LockEvent | undefined {
  const eventType = LOCK_TYPES[l.eventType];
  if (!eventType) return undefined;
  return {
    channelType: channelTypeName(l.channelType),
    channelName: l.channelName,
    eventType,
    lockName: l.lockName,
    ttl: l.ttl,
    publisher: l.publisher,
    owner: l.owner,
    snapshot: l.snapshot.map(lockDetail),
    timestamp: Number(l.timestamp),
  };
}
