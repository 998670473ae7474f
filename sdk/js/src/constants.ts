/**
 * The enumerations of api.md §10 and the `ConstantsType` namespace (§1.9): runtime enums
 * (`AreaCode`, `ChannelTypeEnum`, `LegacyAreaCode`, `LinkStateChangeReasonDescription`,
 * `MessageType`, `TokenEventReason`) and type-only literal unions.
 */

/** How a payload was sent (§10.2). */
export enum MessageType {
  STRING = "STRING",
  BINARY = "BINARY",
}

/** Legacy region codes; accepted and ignored (§2.4). */
export enum LegacyAreaCode {
  CN = "CN",
  NA = "NA",
  EU = "EU",
  AS = "AS",
  JP = "JP",
  IN = "IN",
  GLOB = "GLOB",
  OC = "OC",
  SA = "SA",
  AF = "AF",
  KR = "KR",
  US = "US",
  OVS = "OVS",
}

/** Region codes; a self-hosted deployment accepts and ignores them (§2.4). */
export enum AreaCode {
  GLOBAL = "GLOBAL",
  INDIA = "INDIA",
  JAPAN = "JAPAN",
  ASIA = "ASIA",
  EUROPE = "EUROPE",
  CHINA = "CHINA",
  NORTH_AMERICA = "NORTH_AMERICA",
}

/** Human-readable text of every link state change reason (§10.12). */
export enum LinkStateChangeReasonDescription {
  UNKNOWN = "Unknown",
  LOGIN = "Perform login operation",
  LOGIN_SUCCESS = "Login success",
  LOGIN_TIMEOUT = "Login timeout",
  LOGIN_NOT_AUTHORIZED = "Login not authorized",
  LOGIN_REJECTED = "Login rejected",
  RELOGIN = "Perform login operation again",
  LOGOUT = "Logout success",
  AUTO_RECONNECT = "Reconnecting",
  RECONNECT_TIMEOUT = "Reconnect timeout",
  RECONNECT_SUCCESS = "Reconnect success",
  JOIN = "Perform join operation",
  JOIN_SUCCESS = "Join channel success",
  JOIN_FAILED = "Join channel failed",
  REJOIN = "Perform join operation again",
  LEAVE = "Leave channel success",
  INVALID_TOKEN = "Invalid token",
  TOKEN_EXPIRED = "Token expired",
  INCONSISTENT_APP_ID = "Inconsistent app ID",
  INVALID_CHANNEL_NAME = "Invalid channel name",
  INVALID_USER_ID = "Invalid user id",
  NOT_INITIALIZED = "Not initialized",
  RTM_SERVICE_NOT_CONNECTED = "RTM service not connected",
  CHANNEL_INSTANCE_EXCEED_LIMITATION = "Channel instance exceed limitation",
  OPERATION_RATE_EXCEED_LIMITATION = "Operation rate exceed limitation",
  CHANNEL_IN_ERROR_STATE = "Channel in error state",
  PRESENCE_NOT_CONNECTED = "Presence not connected",
  SAME_UID_LOGIN = "The same uid login on another device",
  KICKED_OUT_BY_SERVER = "Kicked out by server",
  KEEP_ALIVE_TIMEOUT = "Keep alive timeout",
  CONNECTION_ERROR = "Connection error",
  PRESENCE_NOT_READY = "Presence not ready",
  NETWORK_CHANGE = "Network change",
  SERVICE_NOT_SUPPORTED = "Service not supported",
  STREAM_CHANNEL_NOT_AVAILABLE = "Stream channel not available",
  STORAGE_NOT_AVAILABLE = "Storage service is not available",
  LOCK_NOT_AVAILABLE = "Lock service is not available",
  LOGIN_TOO_FREQUENT = "Login operation is too frequent",
}

/** Text of the token event reasons (§10.9). */
export enum TokenEventReason {
  WILL_EXPIRE = "The token is about to expire",
  READ_PERMISSION_REVOKED = "The token read permission is revoked",
}

/** Numeric channel types (§10.1). */
export enum ChannelTypeEnum {
  MESSAGE = 1,
  STREAM = 2,
  USER = 3,
}

/** End-to-end encryption mode (§2.2). */
export type EncryptionMode = "NONE" | "AES_128_GCM" | "AES_256_GCM";
/** Storage kind (§10.4). */
export type StorageType = "NONE" | "USER" | "CHANNEL";
/** Presence event types (§10.5). */
export type PresenceEventType =
  | "NONE"
  | "SNAPSHOT"
  | "INTERVAL"
  | "REMOTE_JOIN"
  | "REMOTE_LEAVE"
  | "REMOTE_TIMEOUT"
  | "REMOTE_STATE_CHANGED"
  | "ERROR_OUT_OF_SERVICE";
/** Topic event types (§10.6). */
export type TopicEventType = "NONE" | "REMOTE_JOIN" | "REMOTE_LEAVE" | "SNAPSHOT";
/** Storage event types (§10.7). */
export type StorageEventType = "NONE" | "SET" | "SNAPSHOT" | "REMOVE" | "UPDATE";
/** Lock event types (§10.8). */
export type LockEventType = "NONE" | "SET" | "REMOVED" | "ACQUIRED" | "RELEASED" | "SNAPSHOT" | "EXPIRED";
/** Token event types (§10.9). */
export type TokenEventType = "WILL_EXPIRE" | "READ_PERMISSION_REVOKED";

/** Link states (§10.10), in numeric order. */
export const LINK_STATES = ["IDLE", "CONNECTING", "CONNECTED", "DISCONNECTED", "SUSPENDED", "FAILED"] as const;
/** Link operations (§10.11), in numeric order. */
export const LINK_OPERATIONS = [
  "LOGIN",
  "LOGOUT",
  "JOIN",
  "LEAVE",
  "SERVER_REJECT",
  "AUTO_RECONNECT",
  "RECONNECTED",
  "HEARTBEAT_TIMEOUT",
  "SERVER_TIMEOUT",
  "NETWORK_CHANGE",
] as const;
