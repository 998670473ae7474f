/**
 * switchboard-rtm: a drop-in for agora-rtm-sdk 2.x (api.md §1.9) that talks to a
 * Switchboard server. The default export is the `AgoraRTM` object (`RTM`, `VERSION`,
 * `BUILD`, `setArea`, `constantsType`, `getParameter`, `setParameter`, `RTMBaseError`);
 * the named exports are the classes, the `ConstantsType` namespace, and every
 * option/response/event type.
 */
import * as ConstantsType from "./constantsType";
import { RTMClient } from "./client";
import { RTMBaseError } from "./errors";
import { getParameter, setArea, setParameter } from "./params";

declare const __SB_VERSION__: string;
declare const __SB_BUILD__: string;

/** SDK version. */
export const VERSION: string = __SB_VERSION__;
/** Build information. */
export const BUILD: string = __SB_BUILD__;
/** The client constructor (`new RTM(appId, userId, config)`). */
export const RTM = RTMClient;
/** The runtime enums (`AgoraRTM.constantsType`). */
export const constantsType = ConstantsType;

export { ConstantsType, RTMClient, RTMBaseError, getParameter, setParameter, setArea };
export { RTMStreamChannel, RTMStreamChannelStatusCode } from "./stream";
export { RTMPresence } from "./presence";
export { RTMStorage } from "./storage";
export { RTMLock } from "./lock";
export { RTMHistory } from "./history";
export type { ErrorInfo, IErrorInfo } from "./errors";
export type {
  AreaCode,
  ChannelTypeEnum,
  EncryptionMode,
  LegacyAreaCode,
  LinkStateChangeReasonDescription,
  LockEventType,
  MessageType,
  PresenceEventType,
  StorageEventType,
  StorageType,
  TokenEventReason,
  TokenEventType,
  TopicEventType,
} from "./constants";
export type * from "./types";

/** The `AgoraRTM` object's shape. */
export interface IAgoraRTM {
  BUILD: string;
  RTM: typeof RTMClient;
  VERSION: string;
  setArea: typeof setArea;
  constantsType: typeof ConstantsType;
}

/** `AgoraRTM` with the tuning functions and the error class. */
export interface IAgoraRTMCompat extends IAgoraRTM {
  getParameter: typeof getParameter;
  setParameter: typeof setParameter;
  RTMBaseError: typeof RTMBaseError;
}

const AgoraRTM: IAgoraRTMCompat = {
  BUILD,
  RTM: RTMClient,
  VERSION,
  setArea,
  constantsType: ConstantsType,
  getParameter,
  setParameter,
  RTMBaseError,
};

export default AgoraRTM;
