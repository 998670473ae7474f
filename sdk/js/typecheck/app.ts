// A chat/presence/stream app written ONLY against the published typings of
// agora-rtm-sdk 2.3.0. It is type-checked twice (never run): once against
// agora-rtm-sdk itself (tsconfig.agora.json) to prove it is a faithful Agora app, and
// once with `agora-rtm-sdk` mapped to this package's declarations
// (tsconfig.switchboard.json) to prove the package is a drop-in at the type level.
// It touches every class, method, option, response field and event field an app uses
// (api.md §1.9–§12). Do not "fix" it to suit this package: change the package instead.

import AgoraRTM, {
  ConstantsType,
  RTMBaseError,
  RTMClient,
  RTMEvents,
  RTMHistory,
  RTMLock,
  RTMPresence,
  RTMStorage,
  RTMStreamChannel,
  RTMStreamChannelStatusCode,
} from 'agora-rtm-sdk';
import type {
  AcquireLockOptions,
  AcquireLockResponse,
  BaseResponse,
  ChannelDetail,
  ChannelMetadataOperationResponse,
  ChannelType,
  ErrorInfo,
  GetChannelMetadataResponse,
  GetHistoryMessageOptions,
  GetLockResponse,
  GetMessagesResponse,
  GetOnlineUsersOptions,
  GetOnlineUsersResponse,
  GetStateResponse,
  GetSubscribedUserListResponse,
  GetUserChannelsResponse,
  GetUserMetadataOptions,
  GetUserMetadataResponse,
  HistoryChannelType,
  HistoryMessage,
  IAgoraRTM,
  IErrorInfo,
  JoinChannelResponse,
  JoinOptions,
  JoinTopicResponse,
  LeaveChannelResponse,
  LeaveTopicResponse,
  LockDetail,
  LockOperationResponse,
  LoginResponse,
  LogoutResponse,
  MetaDataDetail,
  MetadataItem,
  MetadataOptions,
  OccupancyDetail,
  PrivateConfig,
  PublishOptions,
  PublishResponse,
  PublishTopicMessageOptions,
  PublishTopicMessageResponse,
  RTMConfig,
  RTMOperationResponse,
  ReleaseLockResponse,
  RemoveChannelMetadataOptions,
  RemoveChannelMetadataResponse,
  RemoveLockResponse,
  RemoveStateOptions,
  RemoveStateResponse,
  RemoveUserMetadataOptions,
  RemoveUserMetadataResponse,
  RenewTokenOptions,
  RenewTokenResponse,
  RevokeLockResponse,
  ServiceType,
  SetChannelMetadataResponse,
  SetLockOptions,
  SetLockResponse,
  SetOrUpdateUserMetadataOptions,
  SetStateResponse,
  SetUserMetadataResponse,
  StateDetail,
  StorageData,
  StreamChannelOperationResponse,
  SubscribeOptions,
  SubscribeResponse,
  SubscribeTopicOptions,
  SubscribeTopicResponse,
  SubscribeUserMetaResponse,
  SubscribedFailedReason,
  UnsubscribeResponse,
  UnsubscribeTopicOptions,
  UnsubscribeTopicResponse,
  UnsubscribeUserMetaResponse,
  UpdateChannelMetadataResponse,
  UpdateConfigResponse,
  UpdateUserMetadataResponse,
  UserMetadataOperationResponse,
  WhereNowResponse,
  WhoNowOptions,
  WhoNowResponse,
  joinTopicOptions,
} from 'agora-rtm-sdk';

// ---------------------------------------------------------------------------------
// Module surface (§1.9): the default export, its members and the runtime enums.

const { RTM } = AgoraRTM;
const agora: IAgoraRTM = AgoraRTM;
const version: string = AgoraRTM.VERSION;
const build: string = AgoraRTM.BUILD;
AgoraRTM.setArea({ areaCodes: [AgoraRTM.constantsType.AreaCode.GLOBAL] });
agora.setArea({
  areaCodes: [ConstantsType.AreaCode.EUROPE, ConstantsType.AreaCode.NORTH_AMERICA],
  excludedArea: ConstantsType.AreaCode.CHINA,
});
AgoraRTM.setParameter('LOCK_TTL', 10);
const lockTtlParameter: unknown = AgoraRTM.getParameter('LOCK_TTL');
const ErrorClass: typeof RTMBaseError = AgoraRTM.RTMBaseError;
const ClientClass: typeof RTMClient = RTM;

const legacyArea: ConstantsType.LegacyAreaCode = ConstantsType.LegacyAreaCode.GLOB;
const channelTypeNumber: number = ConstantsType.ChannelTypeEnum.MESSAGE +
  ConstantsType.ChannelTypeEnum.STREAM +
  ConstantsType.ChannelTypeEnum.USER;
const stringType: ConstantsType.MessageType = ConstantsType.MessageType.STRING;
const binaryType: string = AgoraRTM.constantsType.MessageType.BINARY;
const sameUidText: string = ConstantsType.LinkStateChangeReasonDescription.SAME_UID_LOGIN;
const willExpireText: string = ConstantsType.TokenEventReason.WILL_EXPIRE;
const revokedText: string = ConstantsType.TokenEventReason.READ_PERMISSION_REVOKED;
const encryption: ConstantsType.EncryptionMode = 'AES_256_GCM';
const lockEventKind: ConstantsType.LockEventType = 'EXPIRED';
const presenceKind: ConstantsType.PresenceEventType = 'REMOTE_TIMEOUT';
const storageKind: ConstantsType.StorageEventType = 'UPDATE';
const storageType: ConstantsType.StorageType = 'CHANNEL';
const tokenKind: ConstantsType.TokenEventType = 'READ_PERMISSION_REVOKED';
const topicKind: ConstantsType.TopicEventType = 'SNAPSHOT';
const alreadySubscribed: RTMStreamChannelStatusCode.SubscribeTopicErrorCode =
  RTMStreamChannelStatusCode.SubscribeTopicErrorCode.ALREADY_SUBSCRIBED_USER;

export const surface = [
  version, build, lockTtlParameter, ErrorClass, ClientClass, legacyArea, channelTypeNumber,
  stringType, binaryType, sameUidText, willExpireText, revokedText, encryption,
  lockEventKind, presenceKind, storageKind, storageType, tokenKind, topicKind,
  alreadySubscribed,
];

// ---------------------------------------------------------------------------------
// Constructor and RTMConfig (§2.1–§2.3).

const serviceTypes: ServiceType[] = ['MESSAGE', 'STREAM'];
const privateConfig: PrivateConfig = {
  serviceType: serviceTypes,
  accessPointHosts: ['rtm.example.com'],
  eventUploadHosts: ['events.example.com'],
  logUploadHosts: ['logs.example.com'],
  originDomains: ['example.com'],
  domainMode: 1,
};
const config: RTMConfig = {
  encryptionMode: 'AES_256_GCM',
  salt: new Uint8Array(32),
  cipherKey: 'a secret of the app',
  presenceTimeout: 300,
  logUpload: false,
  cloudProxy: false,
  useStringUserId: true,
  logLevel: 'error',
  heartbeatInterval: 5,
  privateConfig,
};

const rtm: RTMClient = new RTM('0123456789abcdef0123456789abcdef', 'alice', config);
const plain = new AgoraRTM.RTM('0123456789abcdef0123456789abcdef', '1234', {
  useStringUserId: false,
  logLevel: 'none',
});
const bare = new RTMClient('0123456789abcdef0123456789abcdef', 'bob');

const presence: RTMPresence = rtm.presence;
const storage: RTMStorage = rtm.storage;
const lock: RTMLock = rtm.lock;
const history: RTMHistory = rtm.history;

// ---------------------------------------------------------------------------------
// Events (§9): every listener, every field read, typed both inline and as named
// handlers that are later removed.

function ts(e: RTMEvents.BaseEvent): number {
  return e.timestamp;
}

function stateText(s: StateDetail): string {
  return Object.entries(s).map(([k, v]) => `${k}=${v}`).join(',');
}

function userStates(list: RTMEvents.UserState[]): string[] {
  return list.map((u) => `${u.userId}:${u.statesCount}:${stateText(u.states)}`);
}

function userList(l: RTMEvents.UserList): string {
  return `${l.userCount}:${l.users.join(',')}`;
}

const onMessage = (event: RTMEvents.MessageEvent): void => {
  const channelType: ChannelType = event.channelType;
  const channelName: string = event.channelName;
  const topicName: string = event.topicName;
  const messageType: 'STRING' | 'BINARY' = event.messageType;
  const customType: string = event.customType;
  const publisher: string = event.publisher;
  const publishTime: number | undefined = event.publishTime;
  const text: string =
    typeof event.message === 'string'
      ? event.message
      : new TextDecoder().decode(event.message);
  const bytes: Uint8Array | null = event.message instanceof Uint8Array ? event.message : null;
  console.log(channelType, channelName, topicName, messageType, customType, publisher,
    publishTime, text, bytes?.byteLength, ts(event));
};

const onPresence = (event: RTMEvents.PresenceEvent): void => {
  const kind: 'NONE' | 'SNAPSHOT' | 'INTERVAL' | 'REMOTE_JOIN' | 'REMOTE_LEAVE' |
    'REMOTE_TIMEOUT' | 'REMOTE_STATE_CHANGED' | 'ERROR_OUT_OF_SERVICE' = event.eventType;
  const channelType: ChannelType = event.channelType;
  const channelName: string = event.channelName;
  const publisher: string = event.publisher;
  const changed: string = stateText(event.stateChanged);
  const interval: RTMEvents.IntervalDetail | null = event.interval;
  if (interval !== null) {
    console.log(userList(interval.join), userList(interval.leave), userList(interval.timeout),
      userStates(interval.userStateList), interval.totalOccupancy);
  }
  const snapshot: RTMEvents.UserState[] | null = event.snapshot;
  if (snapshot !== null) {
    console.log(userStates(snapshot));
  }
  switch (event.eventType) {
    case 'SNAPSHOT':
    case 'INTERVAL':
    case 'REMOTE_JOIN':
    case 'REMOTE_LEAVE':
    case 'REMOTE_TIMEOUT':
    case 'REMOTE_STATE_CHANGED':
    case 'ERROR_OUT_OF_SERVICE':
    case 'NONE':
      break;
  }
  console.log(kind, channelType, channelName, publisher, changed, ts(event));
};

const onTopic = (event: RTMEvents.TopicEvent): void => {
  const kind: 'NONE' | 'REMOTE_JOIN' | 'REMOTE_LEAVE' | 'SNAPSHOT' = event.eventType;
  const channelName: string = event.channelName;
  const publisher: string = event.publisher;
  const total: number = event.totalTopics;
  const infos: RTMEvents.topicDetail[] = event.topicInfos;
  for (const info of infos) {
    const name: string = info.topicName;
    const count: number = info.totalPublisher;
    const publishers: RTMEvents.PublishInfo[] = info.publishers;
    for (const p of publishers) {
      const who: string = p.publisherUserId;
      const meta: string = p.publisherMeta;
      console.log(name, count, who, meta);
    }
  }
  console.log(kind, channelName, publisher, total, ts(event));
};

function storageData(data: StorageData): string[] {
  const out: string[] = [`${data.totalCount}@${data.majorRevision}`];
  for (const [key, item] of Object.entries(data.metadata)) {
    const detail: MetaDataDetail = item;
    const value: string = detail.value;
    const revision: number = detail.revision;
    const updated: number = detail.updated;
    const author: string = detail.authorUid;
    out.push(`${key}=${value}#${revision}@${updated}/${author}`);
  }
  return out;
}

const onStorage = (event: RTMEvents.StorageEvent): void => {
  const channelType: ChannelType = event.channelType;
  const channelName: string = event.channelName;
  const publisher: string = event.publisher;
  const kind: 'NONE' | 'USER' | 'CHANNEL' = event.storageType;
  const eventType: 'NONE' | 'SET' | 'SNAPSHOT' | 'REMOVE' | 'UPDATE' = event.eventType;
  console.log(channelType, channelName, publisher, kind, eventType,
    storageData(event.data), ts(event));
};

function lockDetails(list: LockDetail[]): string[] {
  return list.map((d) => `${d.lockName}:${d.owner}:${d.ttl}`);
}

const onLock = (event: RTMEvents.LockEvent): void => {
  const channelType: ChannelType = event.channelType;
  const channelName: string = event.channelName;
  const kind: 'NONE' | 'SET' | 'REMOVED' | 'ACQUIRED' | 'RELEASED' | 'SNAPSHOT' | 'EXPIRED' =
    event.eventType;
  const lockName: string = event.lockName;
  const ttl: number = event.ttl;
  const publisher: string = event.publisher;
  const owner: string = event.owner;
  const snapshot: string[] = lockDetails(event.snapshot);
  console.log(channelType, channelName, kind, lockName, ttl, publisher, owner, snapshot, ts(event));
};

let mustRelogin = false;
const onLinkState = (event: RTMEvents.LinkStateEvent): void => {
  const current: RTMEvents.LinkState = event.currentState;
  const previous: RTMEvents.LinkState = event.previousState;
  const service: ServiceType = event.serviceType;
  const operation: RTMEvents.LinkOperation = event.operation;
  const reason: string = event.reason;
  const code: RTMEvents.LinkStateChangeReasonCode = event.reasonCode;
  const affected: string[] = event.affectedChannels;
  const unrestored: string[] = event.unrestoredChannels;
  const resumed: boolean = event.isResumed;
  if (current === 'FAILED' && code === 'SAME_UID_LOGIN') {
    mustRelogin = true;
  }
  if (current === 'CONNECTED' && operation === 'RECONNECTED' && !resumed) {
    console.log('restore', unrestored);
  }
  console.log(current, previous, service, operation, reason, code, affected, ts(event));
};

const onTokenWillExpire = (channelName: string): void => {
  if (channelName) {
    void rtm.renewToken('new rtc token', { channelName });
  } else {
    void rtm.renewToken('new rtm token');
  }
};

const onToken = (event: RTMEvents.TokenEvent): void => {
  const kind: 'WILL_EXPIRE' | 'READ_PERMISSION_REVOKED' = event.eventType;
  const reason: string = event.reason;
  const channels: string[] = event.affectedResources.messageChannels;
  console.log(kind, reason, channels, ts(event));
};

rtm.addEventListener('message', onMessage);
rtm.addEventListener('presence', onPresence);
rtm.addEventListener('topic', onTopic);
rtm.addEventListener('storage', onStorage);
rtm.addEventListener('lock', onLock);
rtm.addEventListener('linkState', onLinkState);
rtm.addEventListener('tokenPrivilegeWillExpire', onTokenWillExpire);
rtm.addEventListener('token', onToken);

// Inline listeners: the parameter type comes from RTMClientEventMap.
rtm.addEventListener('message', (event) => {
  const fromTopic: boolean = event.channelType === 'STREAM' && event.topicName !== '';
  console.log(fromTopic, event.publisher);
});
rtm.addEventListener('presence', (event) => {
  if (event.eventType === 'REMOTE_JOIN') console.log('joined', event.publisher);
});
rtm.addEventListener('linkState', (event) => {
  console.log(event.currentState, event.reasonCode);
});
rtm.addEventListener('tokenPrivilegeWillExpire', (channelName) => {
  console.log(channelName.length);
});

// The client is an EventEmitter (EventBase): on/off/once/removeAllListeners work too
// (api.md §3.8).
const onceHandler = (...args: unknown[]): void => console.log(args.length);
rtm.on('message', onceHandler);
rtm.off('message', onceHandler);
rtm.once('linkState', onceHandler);
rtm.removeAllListeners('token');

const eventMap: RTMEvents.RTMClientEventMap = {
  presence: onPresence,
  message: onMessage,
  storage: onStorage,
  lock: onLock,
  topic: onTopic,
  tokenPrivilegeWillExpire: onTokenWillExpire,
  linkState: onLinkState,
  token: onToken,
};

// ---------------------------------------------------------------------------------
// The typings are strict, not `any`: each line below must be a type error (against
// agora-rtm-sdk and against this package alike; an unused @ts-expect-error fails).

async function misuse(): Promise<void> {
  // @ts-expect-error a message is required
  await rtm.publish('room');
  // @ts-expect-error not a channel type
  await rtm.publish('room', 'x', { channelType: 'GROUP' });
  // @ts-expect-error payloads are string | Uint8Array
  await rtm.publish('room', 42);
  // @ts-expect-error no such event
  rtm.addEventListener('messages', onMessage);
  // @ts-expect-error a message listener gets a MessageEvent, not a PresenceEvent
  rtm.addEventListener('message', onPresence);
  // @ts-expect-error stream channels have no publish(); topics do
  await rtm.createStreamChannel('match').publish('x');
  // @ts-expect-error the state is string → string
  await presence.setState('room', 'MESSAGE', { mood: 1 });
  // @ts-expect-error STREAM history does not exist (HistoryChannelType)
  await history.getMessages('match', 'STREAM');
  // @ts-expect-error getSubscribedUserList is synchronous
  (await rtm.createStreamChannel('match').getSubscribedUserList('moves')).then(() => 0);
  // @ts-expect-error privateConfig needs accessPointHosts
  const missingHosts: PrivateConfig = { serviceType: ['MESSAGE'] };
  // @ts-expect-error not a log level
  const badLevel: RTMConfig = { logLevel: 'verbose' };
  // @ts-expect-error not a link state
  const badState: RTMEvents.LinkState = 'RECONNECTING';
  // @ts-expect-error lock names are strings
  await lock.acquireLock('room', 'MESSAGE', 7);
  console.log(missingHosts, badLevel, badState);
}
void misuse;

// ---------------------------------------------------------------------------------
// Errors (§12).

function describe(err: unknown): string {
  if (err instanceof RTMBaseError) {
    const info: ErrorInfo = err;
    const flag: boolean = err.error;
    const code: number = err.errorCode;
    const reason: string = err.reason;
    const operation: string = err.operation;
    const alias: number | undefined = err.code;
    const serverCode: number | undefined = err.serverCode;
    const original: Error | undefined = err.originalError;
    const message: string = err.message;
    return [info.errorCode, flag, code, reason, operation, alias, serverCode,
      original?.message, message].join(' ');
  }
  const info = err as ErrorInfo;
  return `${info.error} ${info.errorCode} ${info.reason} ${info.operation}`;
}

const errorInfo: IErrorInfo = { code: -10002, serverCode: 1, originalError: new Error('x') };
const made = new RTMBaseError('login', ['login', 1], errorInfo);
const made2 = new RTMBaseError('publish', 'publish', -11024);
const made3 = new RTMBaseError('subscribe', undefined, 'reason text');
const made4 = new RTMBaseError('logout');

// ---------------------------------------------------------------------------------
// The client (§3), stream channels (§4), presence (§5), storage (§6), locks (§7),
// history (§8).

async function session(): Promise<void> {
  const login: LoginResponse = await rtm.login({ token: 'rtm token' });
  await plain.login();
  const loginTs: number = login.timestamp;

  // Message channels.
  const subscribeOptions: SubscribeOptions = {
    withMessage: true,
    withPresence: true,
    beQuiet: false,
    withMetadata: true,
    withLock: true,
  };
  const sub: SubscribeResponse = await rtm.subscribe('room', subscribeOptions);
  await rtm.subscribe('lobby');
  const subName: string = sub.channelName;
  const operation: RTMOperationResponse = sub;

  const publishOptions: PublishOptions = {
    customType: 'chat',
    channelType: 'MESSAGE',
    storeInHistory: true,
  };
  const pub: PublishResponse = await rtm.publish('room', 'hello', publishOptions);
  await rtm.publish('room', new Uint8Array([1, 2, 3]));
  await rtm.publish('bob', 'hi bob', { channelType: 'USER' });
  const pubName: string = pub.channelName;

  const renewed: RenewTokenResponse = await rtm.renewToken('new rtm token');
  const renewOptions: RenewTokenOptions = { channelName: 'match' };
  await rtm.renewToken('new rtc token', renewOptions);

  // Stream channels and topics.
  const stream: RTMStreamChannel = rtm.createStreamChannel('match');
  const joinOptions: JoinOptions = {
    token: 'rtc token',
    withPresence: true,
    beQuiet: false,
    withMetadata: false,
    withLock: false,
  };
  const joined: JoinChannelResponse = await stream.join(joinOptions);
  const topicOptions: joinTopicOptions = { meta: 'white' };
  const joinedTopic: JoinTopicResponse = await stream.joinTopic('moves', topicOptions);
  await stream.joinTopic('chat');
  const topicName: string = joinedTopic.topicName;
  const sendOptions: PublishTopicMessageOptions = { customType: 'move' };
  const sent: PublishTopicMessageResponse = await stream.publishTopicMessage('moves', 'e2e4',
    sendOptions);
  await stream.publishTopicMessage('moves', new Uint8Array([0xe2, 0xe4]));
  const sentTopic: string = sent.topicName;
  const follow: SubscribeTopicOptions = { users: ['bob', 'carol'] };
  const followed: SubscribeTopicResponse = await stream.subscribeTopic('moves', follow);
  await stream.subscribeTopic('chat');
  const succeeded: string[] = followed.succeedUsers;
  const failed: string[] = followed.failedUsers;
  const details: SubscribedFailedReason[] = followed.failedDetails;
  for (const d of details) {
    const user: string = d.user;
    const code: RTMStreamChannelStatusCode.SubscribeTopicErrorCode | undefined = d.errorCode;
    const reason: string | undefined = d.reason;
    const detailTopic: string = d.topicName;
    if (code === RTMStreamChannelStatusCode.SubscribeTopicErrorCode.SUB_USER_EXCEED_LIMITATION) {
      console.log('too many followed publishers');
    }
    console.log(user, code, reason, detailTopic, d.timestamp);
  }
  const list: GetSubscribedUserListResponse = stream.getSubscribedUserList('moves');
  const subscribed: string[] = list.subscribed;
  const listTopic: string = list.topicName;
  const unfollow: UnsubscribeTopicOptions = { users: ['carol'] };
  const unfollowed: UnsubscribeTopicResponse = await stream.unsubscribeTopic('moves', unfollow);
  await stream.unsubscribeTopic('chat');
  const leftTopic: LeaveTopicResponse = await stream.leaveTopic('chat');
  const streamOp: StreamChannelOperationResponse = leftTopic;
  const left: LeaveChannelResponse = await stream.leave();

  // Presence.
  const whoOptions: WhoNowOptions = { includedUserId: true, includedState: true, page: '' };
  const who: WhoNowResponse = await presence.whoNow('room', 'MESSAGE', whoOptions);
  const occupancy: number = who.totalOccupancy;
  const nextPage: string = who.nextPage;
  for (const o of who.occupants) {
    const occupant: OccupancyDetail = o;
    console.log(occupant.userId, occupant.statesCount, stateText(occupant.states));
  }
  const onlineOptions: GetOnlineUsersOptions = { includedUserId: false };
  const online: GetOnlineUsersResponse = await presence.getOnlineUsers('match', 'STREAM',
    onlineOptions);
  await presence.whoNow('room', 'MESSAGE');
  const where: WhereNowResponse = await presence.whereNow('bob');
  for (const c of where.channels) {
    const detail: ChannelDetail = c;
    console.log(detail.channelName, detail.channelType);
  }
  const channelCount: number = where.totalChannel;
  const userChannels: GetUserChannelsResponse = await presence.getUserChannels('bob');
  const mood: StateDetail = { mood: 'happy', cursor: '10,20' };
  const setState: SetStateResponse = await presence.setState('room', 'MESSAGE', mood);
  const state: GetStateResponse = await presence.getState('bob', 'room', 'MESSAGE');
  const stateUser: string = state.userId;
  const stateCount: number = state.statesCount;
  const states: StateDetail = state.states;
  const removeStateOptions: RemoveStateOptions = { states: ['mood'] };
  const removedState: RemoveStateResponse = await presence.removeState('room', 'MESSAGE',
    removeStateOptions);
  await presence.removeState('room', 'MESSAGE');

  // Storage: channel metadata.
  const items: MetadataItem[] = [
    { key: 'topic', value: 'chess', revision: -1 },
    { key: 'round', value: '1' },
  ];
  const metadataOptions: MetadataOptions = {
    majorRevision: -1,
    lockName: 'referee',
    addTimeStamp: true,
    addUserId: true,
  };
  const setChannel: SetChannelMetadataResponse = await storage.setChannelMetadata('room',
    'MESSAGE', items, metadataOptions);
  const channelOp: ChannelMetadataOperationResponse = setChannel;
  const getChannel: GetChannelMetadataResponse = await storage.getChannelMetadata('room',
    'MESSAGE');
  const channelData: StorageData = getChannel;
  const updateChannel: UpdateChannelMetadataResponse = await storage.updateChannelMetadata(
    'room', 'MESSAGE', [{ key: 'round', value: '2', revision: 1 }], { majorRevision: 1 });
  const removeChannelOptions: RemoveChannelMetadataOptions = {
    data: [{ key: 'round', value: '' }],
    majorRevision: -1,
  };
  const removeChannel: RemoveChannelMetadataResponse = await storage.removeChannelMetadata(
    'room', 'MESSAGE', removeChannelOptions);
  await storage.removeChannelMetadata('match', 'STREAM');

  // Storage: user metadata.
  const userOptions: SetOrUpdateUserMetadataOptions = { userId: 'alice', addUserId: true };
  const setUser: SetUserMetadataResponse = await storage.setUserMetadata(
    [{ key: 'avatar', value: 'cat.png' }], userOptions);
  const userOp: UserMetadataOperationResponse = setUser;
  const getUserOptions: GetUserMetadataOptions = { userId: 'bob' };
  const getUser: GetUserMetadataResponse = await storage.getUserMetadata(getUserOptions);
  await storage.getUserMetadata();
  const updateUser: UpdateUserMetadataResponse = await storage.updateUserMetadata(
    [{ key: 'avatar', value: 'dog.png', revision: 1 }]);
  const removeUserOptions: RemoveUserMetadataOptions = {
    userId: 'alice',
    data: [{ key: 'avatar', value: '' }],
  };
  const removeUser: RemoveUserMetadataResponse = await storage.removeUserMetadata(
    removeUserOptions);
  await storage.removeUserMetadata();
  const watch: SubscribeUserMetaResponse = await storage.subscribeUserMetadata('bob');
  const unwatch: UnsubscribeUserMetaResponse = await storage.unsubscribeUserMetadata('bob');

  // Locks.
  const setLockOptions: SetLockOptions = { ttl: 30 };
  const setLock: SetLockResponse = await lock.setLock('room', 'MESSAGE', 'referee',
    setLockOptions);
  const lockOp: LockOperationResponse = setLock;
  const acquireOptions: AcquireLockOptions = { retry: true };
  const acquired: AcquireLockResponse = await lock.acquireLock('room', 'MESSAGE', 'referee',
    acquireOptions);
  const locks: GetLockResponse = await lock.getLock('room', 'MESSAGE');
  const lockCount: number = locks.totalLocks;
  const lockList: string[] = lockDetails(locks.lockDetails);
  const lockChannel: string = locks.channelName;
  const lockChannelType: ChannelType = locks.channelType;
  const released: ReleaseLockResponse = await lock.releaseLock('room', 'MESSAGE', 'referee');
  const revoked: RevokeLockResponse = await lock.revokeLock('room', 'MESSAGE', 'referee', 'bob');
  const removedLock: RemoveLockResponse = await lock.removeLock('room', 'MESSAGE', 'referee');
  await lock.setLock('match', 'STREAM', 'turn');
  await lock.acquireLock('match', 'STREAM', 'turn');

  // History.
  const historyType: HistoryChannelType = 'MESSAGE';
  const historyOptions: GetHistoryMessageOptions = { messageCount: 50, start: 0, end: 0 };
  const page: GetMessagesResponse = await history.getMessages('room', historyType,
    historyOptions);
  await history.getMessages('bob', 'USER');
  const messages: HistoryMessage[] = page.messageList;
  for (const m of messages) {
    const body: string | Uint8Array = m.message;
    const kind: 'STRING' | 'BINARY' = m.messageType;
    console.log(body, kind, m.customType, m.publisher, m.timestamp);
  }
  const count: number = page.count;
  const newStart: number = page.newStart;

  await rtm.unsubscribe('lobby');
  const unsub: UnsubscribeResponse = await rtm.unsubscribe('room');
  const logout: LogoutResponse = await rtm.logout();

  const responses: BaseResponse[] = [
    login, sub, operation, pub, renewed, joined, joinedTopic, sent, followed, list,
    unfollowed, leftTopic, streamOp, left, who, online, where, userChannels, setState, state,
    removedState, setChannel, channelOp, getChannel, updateChannel, removeChannel, setUser,
    userOp, getUser, updateUser, removeUser, watch, unwatch, setLock, lockOp, acquired, locks,
    released, revoked, removedLock, page, unsub, logout,
  ];
  const unused: UpdateConfigResponse = { timestamp: 0 };
  console.log(responses.map((r) => r.timestamp), unused, loginTs, subName, pubName, topicName,
    sentTopic, succeeded, failed, subscribed, listTopic, occupancy, nextPage, channelCount,
    stateUser, stateCount, states, channelData.metadata, lockCount, lockList, lockChannel,
    lockChannelType, count, newStart);
}

session().catch((err: unknown) => {
  console.error(describe(err));
  rtm.removeEventListener('message', onMessage);
  rtm.removeEventListener('presence', onPresence);
  rtm.removeEventListener('topic', onTopic);
  rtm.removeEventListener('storage', onStorage);
  rtm.removeEventListener('lock', onLock);
  rtm.removeEventListener('linkState', onLinkState);
  rtm.removeEventListener('tokenPrivilegeWillExpire', onTokenWillExpire);
  rtm.removeEventListener('token', onToken);
});

export const others = [bare, eventMap, made, made2, made3, made4, mustRelogin];
