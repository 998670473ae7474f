/** The `ConstantsType` namespace (api.md §1.9): runtime enums and type-only literal types. */
export {
  AreaCode,
  ChannelTypeEnum,
  LegacyAreaCode,
  LinkStateChangeReasonDescription,
  MessageType,
  TokenEventReason,
} from "./constants";
export type {
  EncryptionMode,
  LockEventType,
  PresenceEventType,
  StorageEventType,
  StorageType,
  TokenEventType,
  TopicEventType,
} from "./constants";
