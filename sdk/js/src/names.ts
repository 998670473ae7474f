/**
 * Client-side name and payload checks (api.md §1.8, R1–R13, R63–R66), each failing with
 * the spec's code and a reason naming the rule — the same checks and codes as the
 * protocol crate's `names` module, which the server also applies.
 */
import { rtmError, type RTMBaseError } from "./errors";
import type { ErrorName } from "./gen/codes";

const ALLOWED = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&()+-:;<=.>?@[]^_{}|~,")
  ALLOWED[c.charCodeAt(0)] = 1;

const encoder = new TextEncoder();

/** UTF-8 length of `s`. */
export function byteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

function badChar(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || ALLOWED[c] !== 1) return c;
  }
  return -1;
}

/** Checks a user id / channel name / topic / lock name: `undefined` when valid. */
function checkName(value: unknown, max: number, what: string, op: string, name: ErrorName): RTMBaseError | undefined {
  if (typeof value !== "string") return rtmError(op, name, `${what} must be a string (R4)`);
  if (value.length === 0) return rtmError(op, name, `${what} must not be empty (R4)`);
  if (value === "null") return rtmError(op, name, `${what} must not be "null" (R4)`);
  const len = byteLength(value);
  if (len > max) return rtmError(op, name, `${what} is ${len} bytes, over the limit of ${max} (R2)`);
  if (value.startsWith("_")) return rtmError(op, name, `${what} must not begin with '_' (R5)`);
  const c = badChar(value);
  if (c >= 0) return rtmError(op, name, `${what} contains a character outside the allowed set: U+${c.toString(16).padStart(4, "0")} (R3)`);
  return undefined;
}

/** R1: `[0-9A-Za-z]{32}`. */
export function checkAppId(value: unknown, op: string): RTMBaseError | undefined {
  if (typeof value === "string" && /^[0-9A-Za-z]{32}$/.test(value)) return undefined;
  return rtmError(op, "RTM_ERROR_INVALID_APP_ID", "app id must be exactly 32 characters 0-9, A-Z, a-z (R1)");
}

/** R2–R6 (and R13 with numeric ids). */
export function checkUserId(value: unknown, op: string, numeric = false): RTMBaseError | undefined {
  const e = checkName(value, 64, "user id", op, "RTM_ERROR_INVALID_USER_ID");
  if (e) return e;
  if (numeric && !/^(0|[1-9][0-9]*)$/.test(value as string))
    return rtmError(op, "RTM_ERROR_INVALID_USER_ID", "with useStringUserId: false the user id must be a non-negative decimal integer (R13)");
  return undefined;
}

/** R7, R8. */
export function checkChannelName(value: unknown, op: string): RTMBaseError | undefined {
  return checkName(value, 64, "channel name", op, "RTM_ERROR_INVALID_CHANNEL_NAME");
}

/** R9. */
export function checkTopicName(value: unknown, op: string): RTMBaseError | undefined {
  return checkName(value, 16, "topic name", op, "RTM_ERROR_CHANNEL_INVALID_TOPIC_NAME");
}

/** R10. */
export function checkLockName(value: unknown, op: string, inMetadataOptions = false): RTMBaseError | undefined {
  return checkName(value, 64, "lock name", op, inMetadataOptions ? "RTM_ERROR_STORAGE_INVALID_LOCK_NAME" : "RTM_ERROR_LOCK_INVALID_NAME");
}

/** R66: customType, when given, is a 1–32-byte string. */
export function checkCustomType(value: unknown, op: string): RTMBaseError | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0)
    return rtmError(op, "RTM_ERROR_CHANNEL_INVALID_CUSTOM_TYPE", "customType must be a non-empty string (R66)");
  const len = byteLength(value);
  if (len > 32) return rtmError(op, "RTM_ERROR_CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW", `customType is ${len} bytes, over the limit of 32 (R66)`);
  return undefined;
}

/** Largest payload (R63). */
export const MAX_PAYLOAD_BYTES = 32 * 1024;

/** R63–R65: a payload's wire form, or the error. */
export function payloadOf(message: unknown, op: string): { binary: boolean; bytes: Uint8Array } | RTMBaseError {
  let bytes: Uint8Array;
  let binary: boolean;
  if (typeof message === "string") {
    bytes = encoder.encode(message);
    binary = false;
  } else if (message instanceof Uint8Array) {
    bytes = message;
    binary = true;
  } else {
    return rtmError(op, "RTM_ERROR_CHANNEL_INVALID_MESSAGE", "the message must be a string or a Uint8Array (R64)");
  }
  if (bytes.length > MAX_PAYLOAD_BYTES)
    return rtmError(op, "RTM_ERROR_CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION", `the message is ${bytes.length} bytes, over the limit of ${MAX_PAYLOAD_BYTES} (R63)`);
  return { binary, bytes };
}
