/**
 * Module-level tuning (api.md §2.5): `setParameter` / `getParameter` and `setArea`
 * (accepted and ignored by a self-hosted deployment, §2.4). Besides the Agora keys the
 * SDK honours Switchboard's own timing keys (README): LOGIN_TIMEOUT_MS,
 * REQUEST_TIMEOUT_MS, RECONNECT_BASE_DELAY_MS, RECONNECT_MAX_DELAY_MS, SUSPEND_AFTER_MS.
 */
import { rtmError } from "./errors";
import type { AreaCode } from "./constants";

const DEFAULTS: Record<string, number | boolean | undefined> = {
  MESSAGE_CHANNEL_COUNT: 100,
  STREAM_CHANNEL_COUNT: 10,
  HISTORY_MSG_COUNT_LIMIT: 100,
  MAX_STATE_COUNT: 32,
  LOCK_TTL: 10,
  MIN_RECONNECT_TIMEOUT_IN_SECONDS: undefined,
  RTM_LINK_KEEP_ALIVE_TIMEOUT: 10000,
  HEART_BEAT: undefined,
  PRESENCE_TIMEOUT: undefined,
  EXTEND_CHANNEL_NAME: false,
  ENABLE_API_RATE_LIMIT: true,
  DISABLE_MESSAGE_COMPRESSION: false,
  DISABLE_PRESENCE: false,
  PRESENCE_INTERVAL: 30,
  PRESENCE_THRESHOLD: 50,
  LOGIN_TIMEOUT_MS: 12000,
  REQUEST_TIMEOUT_MS: 10000,
  RECONNECT_BASE_DELAY_MS: 500,
  RECONNECT_MAX_DELAY_MS: 10000,
  SUSPEND_AFTER_MS: 115000,
};

const values: Record<string, unknown> = { ...DEFAULTS };

/** Sets a tuning parameter; a value of the wrong type fails with −10014. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const setParameter = (key: any, value: any): void => {
  if (typeof key !== "string") throw rtmError("setParameter", "RTM_ERROR_INVALID_PARAMETER", "the key must be a string");
  const def = DEFAULTS[key];
  const kind = typeof def === "boolean" ? "boolean" : key in DEFAULTS ? "number" : undefined;
  if (kind && value !== undefined && typeof value !== kind)
    throw rtmError("setParameter", "RTM_ERROR_INVALID_PARAMETER", `${key} takes a ${kind}`);
  values[key] = value;
};

/** The value of a tuning parameter. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const getParameter = (key: any): any => values[String(key)];

/** A numeric parameter with a default. */
export function num(key: string, fallback: number): number {
  const v = values[key];
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

/** Accepted and ignored: a self-hosted deployment has no regions (§2.4). */
export function setArea(options: { areaCodes: AreaCode[]; excludedArea?: AreaCode }): void {
  void options;
}
