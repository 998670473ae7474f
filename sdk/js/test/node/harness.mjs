// Test harness for the Node integration tests: starts the real `switchboard serve` on a
// free loopback port with a temporary data dir, mints tokens with `switchboard token`,
// builds clients pointed at it, and offers `eventually` (poll a condition with a
// deadline, never a fixed sleep) and an event recorder. The binary is $SWITCHBOARD_BIN,
// default ../../target/debug/switchboard relative to sdk/js.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import AgoraRTM, { setParameter } from "../../dist/index.mjs";

const sdkDir = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const BIN = process.env.SWITCHBOARD_BIN ?? resolve(sdkDir, "../../target/debug/switchboard");

export const APP_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
export const APP_CERT = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/** An app without a certificate (any token accepted). */
export const OPEN_APP = "0123456789abcdef0123456789abcdef";

let userSeq = 0;
/** A fresh user id. */
export function uid(prefix = "u") {
  return `${prefix}${process.pid}x${++userSeq}`;
}

/** Starts a server; `extra` are more `serve` flags. */
export async function startServer(extra = []) {
  if (!existsSync(BIN)) throw new Error(`switchboard binary not found at ${BIN}: build it (cargo build -p switchboard-cli) or set SWITCHBOARD_BIN`);
  const dataDir = mkdtempSync(join(tmpdir(), "sb-js-"));
  const args = [
    "serve",
    "--listen", "127.0.0.1:0",
    "--data-dir", dataDir,
    "--app", `${APP_ID}:${APP_CERT}`,
    "--app", OPEN_APP,
    "--heartbeat-interval-range", "1-1800",
    "--presence-timeout-range", "1-300",
    "--shutdown-grace-ms", "200",
    ...extra,
  ];
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } });
  let out = "";
  let err = "";
  const addr = await new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out} ${err}`)), 20000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on ws:\/\/([0-9.]+:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveAddr(m[1]);
      }
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => reject(new Error(`server exited ${code}: ${out} ${err}`)));
  });
  return {
    addr,
    url: `ws://${addr}`,
    async stop() {
      await closeAll();
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
        clearTimeout(killer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An RTM login token for `userId` (certificate app). */
export function rtmToken(userId, expire = 3600) {
  return execFileSync(BIN, ["token", "rtm", "--app-id", APP_ID, "--app-cert", APP_CERT, "--user-id", userId, "--expire", String(expire)]).toString().trim();
}

/** An RTC token for stream channel `channel` and `userId` (certificate app). */
export function rtcToken(channel, userId, expire = 3600) {
  return execFileSync(BIN, ["token", "rtc", "--app-id", APP_ID, "--app-cert", APP_CERT, "--channel", channel, "--user-id", userId, "--expire", String(expire)]).toString().trim();
}

const clients = [];

/** Logs out every client the harness made (end of a test file). */
export async function closeAll() {
  await Promise.all(clients.splice(0).map((c) => c.logout().catch(() => {})));
}

/** A client of `appId` pointed at `url` (a ws:// URL). */
export function client(url, userId, config = {}, appId = OPEN_APP) {
  const c = new AgoraRTM.RTM(appId, userId, {
    logLevel: "none",
    ...config,
    privateConfig: { serviceType: ["MESSAGE", "STREAM"], accessPointHosts: [url], ...(config.privateConfig ?? {}) },
  });
  clients.push(c);
  return c;
}

/** Records every event of a client, by name. */
export function record(c) {
  const names = ["message", "presence", "topic", "storage", "lock", "linkState", "tokenPrivilegeWillExpire", "token", "error"];
  const log = Object.fromEntries(names.map((n) => [n, []]));
  for (const n of names) c.addEventListener(n, (e) => log[n].push(e));
  return log;
}

/** Polls `cond` until it returns a truthy value (returned) or the deadline passes. */
export async function eventually(cond, { timeout = 10000, interval = 10, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Expects `p` to reject with `errorCode`. */
export async function rejectsWith(p, errorCode) {
  try {
    await p;
  } catch (e) {
    if (e?.errorCode === errorCode && e.error === true && typeof e.reason === "string" && typeof e.operation === "string") return e;
    throw new Error(`expected errorCode ${errorCode}, got ${e?.errorCode} (${e?.reason ?? e})`);
  }
  throw new Error(`expected errorCode ${errorCode}, but it resolved`);
}

/** Fast reconnects for tests. */
export function fastReconnect() {
  setParameter("RECONNECT_BASE_DELAY_MS", 50);
  setParameter("RECONNECT_MAX_DELAY_MS", 300);
}

export { AgoraRTM, setParameter };
