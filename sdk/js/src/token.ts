/**
 * The SDK's token pre-checks (token.md T61–T63): an empty token becomes the app id; the
 * app id inside a `006`/`007` token must be this client's, checked before anything is
 * sent. `007` tokens are base64 of a zlib stream (T1, T16), inflated with the platform's
 * DecompressionStream (Node 18+, browsers).
 */
import { rtmError, type RTMBaseError } from "./errors";

function base64Decode(s: string): Uint8Array | undefined {
  try {
    const bin = atob(s.replace(/=+$/, "").padEnd(Math.ceil(s.replace(/=+$/, "").length / 4) * 4, "="));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}

async function inflate(data: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    const ds = new DecompressionStream("deflate");
    const stream = new Blob([data as BlobPart]).stream().pipeThrough(ds);
    const buf = await new Response(stream).arrayBuffer();
    return new Uint8Array(buf);
  } catch {
    return undefined;
  }
}

/** The app id inside a `007` token, or `undefined` when it does not decode. */
export async function appIdOf007(token: string): Promise<string | undefined> {
  const raw = base64Decode(token.slice(3));
  if (!raw) return undefined;
  const payload = await inflate(raw);
  if (!payload || payload.length < 4) return undefined;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const sigLen = view.getUint16(0, true);
  let at = 2 + sigLen;
  if (at + 2 > payload.length) return undefined;
  const idLen = view.getUint16(at, true);
  at += 2;
  if (at + idLen > payload.length) return undefined;
  return new TextDecoder().decode(payload.subarray(at, at + idLen));
}

/** T61–T63: the token to send, or the error to fail with. */
export async function precheckToken(token: string | null | undefined, appId: string, op: string): Promise<string | RTMBaseError> {
  if (token === undefined || token === null || token === "") return appId;
  if (typeof token !== "string") return rtmError(op, "RTM_ERROR_INVALID_TOKEN", "the token must be a string");
  let embedded: string | undefined;
  if (token.startsWith("006")) embedded = token.slice(3, 35);
  else if (token.startsWith("007")) {
    embedded = await appIdOf007(token);
    if (embedded === undefined) return rtmError(op, "RTM_ERROR_INVALID_TOKEN", "MALFORMED: the token does not decode (T62)");
  } else if (token === appId) return token;
  else return rtmError(op, "RTM_ERROR_INVALID_TOKEN", "MALFORMED: not a 006/007 token nor the app id (T62)");
  if (!/^[0-9A-Za-z]{32}$/.test(embedded)) return rtmError(op, "RTM_ERROR_INVALID_TOKEN", "MALFORMED: the token's app id is not 32 alphanumeric characters (T63)");
  if (embedded !== appId) return rtmError(op, "RTM_ERROR_INCONSISTENT_APPID", "APP_ID_MISMATCH: the token is for another app id (T63)");
  return token;
}
