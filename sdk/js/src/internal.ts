/**
 * Internals exposed for the SDK's own unit tests (built as dist/internal.mjs, not part of
 * the package's public exports).
 */
export { PayloadCipher, deriveKeyBytes, paddedSalt, keyLength } from "./crypto";
export { encodeFrame, splitFrame } from "./conn";
export { checkChannelName, checkCustomType, checkTopicName, checkUserId, checkLockName, payloadOf, byteLength } from "./names";
export { precheckToken, appIdOf007 } from "./token";
export { endpointUrl } from "./transport";
export { EventBase } from "./emitter";
export { loginFailureReason, timeoutCode } from "./client";
export { Positions } from "./session";
export { decodeServerMessage } from "./gen/decode";
export * as pb from "./gen/switchboard/v1/switchboard_pb";
export { create, toBinary, fromBinary } from "@bufbuild/protobuf";
