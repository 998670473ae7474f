// The console's only way to the server: the HTTP API under /v1/apps/{app_id}/ with
// the app's API key and secret as HTTP Basic. The credentials live in this tab's
// sessionStorage (gone when the tab closes) and never go into a URL.

const KEY = 'switchboard-console';

/** @typedef {{ appId: string, key: string, secret: string }} Creds */

/** @returns {Creds | null} */
export function creds() {
  try {
    const c = JSON.parse(sessionStorage.getItem(KEY) ?? 'null');
    return c && c.appId && c.key ? c : null;
  } catch {
    return null;
  }
}

/** @param {Creds | null} c */
export function setCreds(c) {
  if (c) sessionStorage.setItem(KEY, JSON.stringify(c));
  else sessionStorage.removeItem(KEY);
}

/** An answer that was not 2xx, with the server's code and reason. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.reason ? `${body.reason} (${body.code})` : `HTTP ${status}`);
    this.status = status;
    this.code = body?.code;
  }
}

/**
 * Calls the API: `path` is relative to the app (`stats`, `channels?search=x`).
 * @param {string} path
 * @param {{ method?: string, body?: unknown, creds?: Creds }} [opts]
 */
export async function api(path, opts = {}) {
  const c = opts.creds ?? creds();
  if (!c) throw new ApiError(401, { reason: 'not logged in', code: 0 });
  const headers = { authorization: `Basic ${btoa(`${c.key}:${c.secret}`)}` };
  let body;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const resp = await fetch(`/v1/apps/${encodeURIComponent(c.appId)}/${path}`, {
    method: opts.method ?? 'GET', headers, body, cache: 'no-store', credentials: 'omit',
  });
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!resp.ok) throw new ApiError(resp.status, json);
  return json;
}

/** A path segment, escaped. */
export const seg = (s) => encodeURIComponent(s);
