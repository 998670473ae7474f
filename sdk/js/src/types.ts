/**
 * Option, response and event shapes of the client API (api.md §2–§9), by the names of
 * agora-rtm-sdk 2.3.0, plus the `RTMEvents` namespace of event shapes.
 */
import type {
  EncryptionMode,
  LockEventType,
  PresenceEventType,
  StorageEventType,
  StorageType,
  TokenEventType,
  TopicEventType,
} from "./constants";
import type { RTMBaseError } from "./errors";

/** `'MESSAGE' | 'STREAM' | 'USER'` (§1.3). */
export type ChannelType = "STREAM" | "MESSAGE" | "USER";
/** `'MESSAGE' | 'STREAM'` (§1.5). */
export type ServiceType = "MESSAGE" | "STREAM";
/** Channel types history accepts (§8). */
export type HistoryChannelType = Exclude<ChannelType, "STREAM">;

/** Every response carries the server time of the operation (§1.7). */
export interface BaseResponse {
  timestamp: number;
}

/** Private-deployment endpoints (§2.3); `accessPointHosts` points the SDK at Switchboard. */
export interface PrivateConfig {
  serviceType: ServiceType[];
  accessPointHosts: string[];
  eventUploadHosts?: string[];
  logUploadHosts?: string[];
  originDomains?: string[];
  domainMode?: 1 | 2;
}

/** Client configuration (§2.2). */
export interface RTMConfig {
  encryptionMode?: EncryptionMode;
  salt?: Uint8Array;
  cipherKey?: string;
  presenceTimeout?: number;
  logUpload?: boolean;
  cloudProxy?: boolean;
  useStringUserId?: boolean;
  logLevel?: "debug" | "info" | "warn" | "error" | "none";
  heartbeatInterval?: number;
  privateConfig?: PrivateConfig;
}

/** `login` options (§3.1). */
export interface LoginOptions {
  token?: string;
}
/** `login` response. */
export interface LoginResponse extends BaseResponse {}
/** `logout` response. */
export interface LogoutResponse extends BaseResponse {}
/** A response naming a channel. */
export interface RTMOperationResponse extends BaseResponse {
  channelName: string;
}
/** `publish` options (§3.3). */
export interface PublishOptions {
  customType?: string;
  channelType?: ChannelType;
  storeInHistory?: boolean;
}
/** `publish` response. */
export interface PublishResponse extends RTMOperationResponse {}
/** `subscribe` options (§3.4, defaults R78). */
export interface SubscribeOptions {
  withMessage?: boolean;
  withPresence?: boolean;
  beQuiet?: boolean;
  withMetadata?: boolean;
  withLock?: boolean;
}
/** `subscribe` response. */
export interface SubscribeResponse extends RTMOperationResponse {}
/** `unsubscribe` response. */
export interface UnsubscribeResponse extends RTMOperationResponse {}
/** `renewToken` options (§3.7). */
export interface RenewTokenOptions {
  channelName?: string;
}
/** `renewToken` response. */
export interface RenewTokenResponse extends BaseResponse {}
/** Declared by the typings; no method returns it. */
export interface UpdateConfigResponse extends BaseResponse {}

// ---- stream channels (§4) ----

/** `join` options (§4.1, defaults R90). */
export interface JoinOptions {
  token?: string;
  withPresence?: boolean;
  beQuiet?: boolean;
  withMetadata?: boolean;
  withLock?: boolean;
}
/** `joinTopic` options (§4.3); `qos`, `priority`, `syncWithMedia` from the Go SDK. */
export interface joinTopicOptions {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  meta?: any;
  qos?: "UNORDERED" | "ORDERED";
  priority?: "HIGHEST" | "HIGH" | "NORMAL" | "LOW";
  syncWithMedia?: boolean;
}
/** `publishTopicMessage` options (§4.4). */
export interface PublishTopicMessageOptions {
  customType?: string;
  sendTs?: number;
}
/** `subscribeTopic` options (§4.6). */
export interface SubscribeTopicOptions {
  users?: string[];
}
/** `unsubscribeTopic` options (§4.7). */
export interface UnsubscribeTopicOptions {
  users?: string[];
}
/** A response naming a topic. */
export interface StreamChannelOperationResponse extends BaseResponse {
  topicName: string;
}
/** `join` response (with `channelName`, §15 #9). */
export interface JoinChannelResponse extends BaseResponse {
  channelName: string;
}
/** `leave` response. */
export interface LeaveChannelResponse extends JoinChannelResponse {}
/** `joinTopic` response. */
export interface JoinTopicResponse extends StreamChannelOperationResponse {}
/** `leaveTopic` response. */
export interface LeaveTopicResponse extends JoinTopicResponse {}
/** `publishTopicMessage` response. */
export interface PublishTopicMessageResponse extends StreamChannelOperationResponse {}
/** One user a topic (un)subscription did not apply to (§4.6). */
export interface SubscribedFailedReason extends StreamChannelOperationResponse {
  user: string;
  errorCode?: number;
  reason?: string;
}
/** `subscribeTopic` response. */
export interface SubscribeTopicResponse extends StreamChannelOperationResponse {
  succeedUsers: string[];
  failedUsers: string[];
  failedDetails: SubscribedFailedReason[];
}
/** `unsubscribeTopic` response. */
export interface UnsubscribeTopicResponse extends BaseResponse {}
/** `getSubscribedUserList` result (§4.8). */
export interface GetSubscribedUserListResponse extends StreamChannelOperationResponse {
  subscribed: string[];
}

// ---- presence (§5) ----

/** A member's temporary state. */
export interface StateDetail {
  [key: string]: string;
}
/** One member in `whoNow`. */
export interface OccupancyDetail {
  states: StateDetail;
  userId: string;
  statesCount: number;
}
/** `whoNow` options (§5.1). */
export interface WhoNowOptions {
  includedUserId?: boolean;
  includedState?: boolean;
  page?: string;
}
/** Same as `WhoNowOptions`. */
export interface GetOnlineUsersOptions extends WhoNowOptions {}
/** `whoNow` response. */
export interface WhoNowResponse extends BaseResponse {
  totalOccupancy: number;
  occupants: OccupancyDetail[];
  nextPage: string;
}
/** Same as `WhoNowResponse`. */
export interface GetOnlineUsersResponse extends WhoNowResponse {}
/** A channel a user is in. */
export interface ChannelDetail {
  channelName: string;
  channelType: ChannelType;
}
/** `whereNow` response (§5.2). */
export interface WhereNowResponse extends BaseResponse {
  channels: ChannelDetail[];
  totalChannel: number;
}
/** Same as `WhereNowResponse`. */
export interface GetUserChannelsResponse extends WhereNowResponse {}
/** `setState` response. */
export interface SetStateResponse extends BaseResponse {}
/** `getState` response (§5.4). */
export interface GetStateResponse extends OccupancyDetail, BaseResponse {}
/** `removeState` options (§5.5). */
export interface RemoveStateOptions {
  states?: string[];
}
/** `removeState` response. */
export interface RemoveStateResponse extends BaseResponse {}

// ---- storage (§6) ----

/** One item to write (§6.1). */
export interface MetadataItem {
  key: string;
  value: string;
  revision?: number;
}
/** One stored item. */
export interface MetaDataDetail {
  value: string;
  revision: number;
  updated: number;
  authorUid: string;
}
/** A whole metadata object. */
export interface StorageData {
  totalCount: number;
  majorRevision: number;
  metadata: Record<string, MetaDataDetail>;
}
/** Write options (§6.1). */
export interface MetadataOptions {
  majorRevision?: number;
  lockName?: string;
  addTimeStamp?: boolean;
  addUserId?: boolean;
}
/** `removeUserMetadata` options. */
export interface RemoveUserMetadataOptions extends MetadataOptions {
  userId?: string;
  data?: MetadataItem[];
}
/** `removeChannelMetadata` options. */
export interface RemoveChannelMetadataOptions extends MetadataOptions {
  data?: MetadataItem[];
}
/** `setUserMetadata` / `updateUserMetadata` options. */
export interface SetOrUpdateUserMetadataOptions extends MetadataOptions {
  userId?: string;
}
/** `getUserMetadata` options. */
export interface GetUserMetadataOptions {
  userId?: string;
}
/** A channel metadata response. */
export interface ChannelMetadataOperationResponse extends BaseResponse {
  channelName: string;
  channelType: ChannelType;
}
/** A user metadata response. */
export interface UserMetadataOperationResponse extends BaseResponse {
  userId: string;
}
/** `setChannelMetadata` response. */
export interface SetChannelMetadataResponse extends ChannelMetadataOperationResponse {
  totalCount: number;
}
/** `updateChannelMetadata` response. */
export interface UpdateChannelMetadataResponse extends ChannelMetadataOperationResponse {
  totalCount: number;
}
/** `removeChannelMetadata` response. */
export interface RemoveChannelMetadataResponse extends ChannelMetadataOperationResponse {
  totalCount: number;
}
/** `getChannelMetadata` response. */
export interface GetChannelMetadataResponse extends StorageData, ChannelMetadataOperationResponse {}
/** `setUserMetadata` response. */
export interface SetUserMetadataResponse extends UserMetadataOperationResponse {
  totalCount: number;
}
/** `updateUserMetadata` response. */
export interface UpdateUserMetadataResponse extends UserMetadataOperationResponse {
  totalCount: number;
}
/** `removeUserMetadata` response. */
export interface RemoveUserMetadataResponse extends UserMetadataOperationResponse {
  totalCount: number;
}
/** `getUserMetadata` response. */
export interface GetUserMetadataResponse extends StorageData, UserMetadataOperationResponse {}
/** `subscribeUserMetadata` response. */
export interface SubscribeUserMetaResponse extends UserMetadataOperationResponse {}
/** `unsubscribeUserMetadata` response. */
export interface UnsubscribeUserMetaResponse extends UserMetadataOperationResponse {}

// ---- locks (§7) ----

/** One lock of a channel. */
export interface LockDetail {
  lockName: string;
  owner: string;
  ttl: number;
}
/** `setLock` options. */
export interface SetLockOptions {
  ttl?: number;
}
/** `acquireLock` options. */
export interface AcquireLockOptions {
  retry?: boolean;
}
/** A lock operation's response. */
export interface LockOperationResponse extends BaseResponse {
  channelName: string;
  channelType: ChannelType;
  lockName: string;
}
/** `setLock` response. */
export interface SetLockResponse extends LockOperationResponse {}
/** `removeLock` response. */
export interface RemoveLockResponse extends LockOperationResponse {}
/** `acquireLock` response. */
export interface AcquireLockResponse extends LockOperationResponse {}
/** `releaseLock` response. */
export interface ReleaseLockResponse extends LockOperationResponse {}
/** `revokeLock` response. */
export interface RevokeLockResponse extends LockOperationResponse {}
/** `getLock` response. */
export interface GetLockResponse extends BaseResponse {
  totalLocks: number;
  lockDetails: LockDetail[];
  channelName: string;
  channelType: ChannelType;
}

// ---- history (§8) ----

/** `getMessages` options. */
export interface GetHistoryMessageOptions {
  messageCount?: number;
  start?: number;
  end?: number;
}
/** One stored message. */
export interface HistoryMessage {
  message: string | Uint8Array;
  messageType: "STRING" | "BINARY";
  customType: string;
  publisher: string;
  timestamp: number;
}
/** `getMessages` response. */
export interface GetMessagesResponse extends BaseResponse {
  messageList: HistoryMessage[];
  count: number;
  newStart: number;
}

// ---- events (§9) ----

/** Event shapes (api.md §9). */
// eslint-disable-next-line @typescript-eslint/no-namespace
export declare namespace RTMEvents {
  /** Every event carries server time. */
  type BaseEvent = { timestamp: number };
  /** One publisher of a topic. */
  interface PublishInfo {
    publisherUserId: string;
    publisherMeta: string;
  }
  /** One topic with its publishers. */
  interface topicDetail {
    topicName: string;
    publishers: PublishInfo[];
    totalPublisher: number;
  }
  /** One member with its state. */
  interface UserState {
    userId: string;
    states: StateDetail;
    statesCount: number;
  }
  /** A list of users. */
  interface UserList {
    users: string[];
    userCount: number;
  }
  /** What changed during one presence interval. */
  interface IntervalDetail {
    join: UserList;
    leave: UserList;
    timeout: UserList;
    userStateList: UserState[];
    totalOccupancy: number;
  }
  /** `presence` event (§9.3). */
  interface PresenceEvent extends BaseEvent {
    eventType: PresenceEventType;
    channelType: ChannelType;
    channelName: string;
    publisher: string;
    stateChanged: StateDetail;
    interval: IntervalDetail | null;
    snapshot: UserState[] | null;
  }
  /** `message` event (§9.2). */
  interface MessageEvent extends BaseEvent {
    channelType: ChannelType;
    channelName: string;
    topicName: string;
    messageType: "STRING" | "BINARY";
    customType: string;
    message: string | Uint8Array;
    publisher: string;
    publishTime?: number;
  }
  /** `storage` event (§9.5). */
  interface StorageEvent extends BaseEvent {
    channelType: ChannelType;
    channelName: string;
    publisher: string;
    storageType: StorageType;
    eventType: StorageEventType;
    data: StorageData;
  }
  /** `lock` event (§9.6). */
  interface LockEvent extends BaseEvent {
    channelType: ChannelType;
    channelName: string;
    eventType: LockEventType;
    lockName: string;
    ttl: number;
    publisher: string;
    snapshot: LockDetail[];
    owner: string;
  }
  /** `topic` event (§9.4). */
  interface TopicEvent extends BaseEvent {
    eventType: TopicEventType;
    channelName: string;
    publisher: string;
    topicInfos: topicDetail[];
    totalTopics: number;
  }
  /** What caused a link state change (§10.11). */
  type LinkOperation =
    | "LOGIN"
    | "LOGOUT"
    | "JOIN"
    | "LEAVE"
    | "SERVER_REJECT"
    | "AUTO_RECONNECT"
    | "RECONNECTED"
    | "HEARTBEAT_TIMEOUT"
    | "SERVER_TIMEOUT"
    | "NETWORK_CHANGE";
  /** Link states (§10.10). */
  type LinkState = "IDLE" | "CONNECTING" | "CONNECTED" | "DISCONNECTED" | "SUSPENDED" | "FAILED";
  /** Machine-readable link state change reasons (§10.12). */
  type LinkStateChangeReasonCode =
    | "UNKNOWN"
    | "LOGIN"
    | "LOGIN_SUCCESS"
    | "LOGIN_TIMEOUT"
    | "LOGIN_NOT_AUTHORIZED"
    | "LOGIN_REJECTED"
    | "RELOGIN"
    | "LOGOUT"
    | "AUTO_RECONNECT"
    | "RECONNECT_TIMEOUT"
    | "RECONNECT_SUCCESS"
    | "JOIN"
    | "JOIN_SUCCESS"
    | "JOIN_FAILED"
    | "REJOIN"
    | "LEAVE"
    | "INVALID_TOKEN"
    | "TOKEN_EXPIRED"
    | "INCONSISTENT_APP_ID"
    | "INVALID_CHANNEL_NAME"
    | "INVALID_USER_ID"
    | "NOT_INITIALIZED"
    | "RTM_SERVICE_NOT_CONNECTED"
    | "CHANNEL_INSTANCE_EXCEED_LIMITATION"
    | "OPERATION_RATE_EXCEED_LIMITATION"
    | "CHANNEL_IN_ERROR_STATE"
    | "PRESENCE_NOT_CONNECTED"
    | "SAME_UID_LOGIN"
    | "KICKED_OUT_BY_SERVER"
    | "KEEP_ALIVE_TIMEOUT"
    | "CONNECTION_ERROR"
    | "PRESENCE_NOT_READY"
    | "NETWORK_CHANGE"
    | "SERVICE_NOT_SUPPORTED"
    | "STREAM_CHANNEL_NOT_AVAILABLE"
    | "STORAGE_NOT_AVAILABLE"
    | "LOCK_NOT_AVAILABLE"
    | "LOGIN_TOO_FREQUENT";
  /** `linkState` event (§9.7). */
  interface LinkStateEvent extends BaseEvent {
    currentState: LinkState;
    previousState: LinkState;
    serviceType: ServiceType;
    operation: LinkOperation;
    reason: string;
    reasonCode: LinkStateChangeReasonCode;
    affectedChannels: string[];
    unrestoredChannels: string[];
    isResumed: boolean;
    /** Switchboard: channels whose missed messages could not all be replayed. */
    gapChannels?: string[];
  }
  /** `token` event (§9.8). */
  interface TokenEvent extends BaseEvent {
    eventType: TokenEventType;
    reason: string;
    affectedResources: { messageChannels: string[] };
  }
  /**
   * Switchboard's `error` event: a problem that is no call's failure, e.g. a received
   * payload that did not decrypt (RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED, never
   * delivered as a `message`).
   */
  interface ErrorEvent extends BaseEvent {
    error: RTMBaseError;
    channelType: ChannelType;
    channelName: string;
    topicName: string;
    publisher: string;
  }
  /** Listener signatures by event name (§9.1). */
  interface RTMClientEventMap {
    presence: (presenceData: PresenceEvent) => void;
    message: (message: MessageEvent) => void;
    storage: (storageData: StorageEvent) => void;
    lock: (lockInfo: LockEvent) => void;
    topic: (topicEvent: TopicEvent) => void;
    tokenPrivilegeWillExpire: (channelName: string) => void;
    linkState: (linkState: LinkStateEvent) => void;
    token: (tokenEvent: TokenEvent) => void;
  }
  /** The client's events: Agora's map plus Switchboard's `error` event. */
  interface RTMClientEventMapWithError extends RTMClientEventMap {
    error: (errorEvent: ErrorEvent) => void;
  }
}
