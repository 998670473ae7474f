// Test harness of the browser end-to-end tests: the real `switchboard serve` on a free
// loopback port with a throwaway data dir and app, tokens minted by `switchboard token`,
// a fault-injection TCP proxy, a static HTTP server for the test pages and a headless
// Debian Chromium driven by playwright-core. Waits poll for a state, never sleep.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
/** sdk/js */
export const sdkRoot = resolve(here, '..', '..', '..');
/** Where the tests save their screenshots. */
export const screenshotDir = resolve(here, '..', 'screenshots');
/** The browser bundle under test. */
export const bundlePath = join(sdkRoot, 'dist', 'agora-rtm.min.js');

/** The switchboard binary: $SWITCHBOARD_BIN or the workspace's debug build. */
export function switchboardBin() {
  const bin = process.env.SWITCHBOARD_BIN ?? resolve(sdkRoot, '..', '..', 'target', 'debug', 'switchboard');
  if (!existsSync(bin)) {
    throw new Error(`switchboard binary not found at ${bin}; build it (cargo build -p switchboard-cli) or set SWITCHBOARD_BIN`);
  }
  return bin;
}

/**
 * Polls `probe` until it returns a truthy value (returned) or the deadline passes (throws
 * with `what` and the last value or error seen).
 * @template T
 * @param {string} what
 * @param {() => Promise<T> | T} probe
 * @param {{ timeoutMs?: number, intervalMs?: number }} [opts]
 * @returns {Promise<T>}
 */
export async function eventually(what, probe, opts = {}) {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  const interval = opts.intervalMs ?? 50;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.stack : JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * A running `switchboard serve` with one app (random id and certificate); `http` is the
 * HTTP side's base URL when started with `{ http: true }`, else ''.
 * @typedef {{ url: string, port: number, http: string, appId: string, cert: string, bin: string,
 *   dataDir: string, output: () => string, token: (kind: 'rtm'|'rtc', userId: string, channel?: string, expireSecs?: number) => Promise<string>,
 *   stop: () => Promise<void> }} Server
 */

/**
 * Starts the server on 127.0.0.1:0 and waits for its "listening on" line(s).
 * @param {string[]} [extraArgs] more `serve` flags
 * @param {{ config?: (appId: string, cert: string) => string, http?: boolean }} [opts]
 *   `config`: the app is declared in a config file with this TOML instead of `--app`;
 *   `http`: also listen with the HTTP side (API, console) on a free port
 * @returns {Promise<Server>}
 */
export async function startServer(extraArgs = [], opts = {}) {
  const bin = switchboardBin();
  const appId = randomBytes(16).toString('hex');
  const cert = randomBytes(16).toString('hex');
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-browser-data-'));
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dataDir, 'data')];
  if (opts.config) {
    const file = join(dataDir, 'switchboard.toml');
    writeFileSync(file, opts.config(appId, cert));
    args.push('--config', file);
  } else {
    args.push('--app', `${appId}:${cert}`);
  }
  if (opts.http) args.push('--http-listen', '127.0.0.1:0');
  const child = spawn(bin, [...args, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  let exited = false;
  child.on('exit', () => { exited = true; });
  const [port, http] = await eventually('switchboard serve to listen', () => {
    if (exited) throw new Error(`switchboard serve exited:\n${out}`);
    const m = /listening on ws:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    const h = /http api:\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    return m && (h || !opts.http) ? [Number(m[1]), h ? h[1] : ''] : null;
  }, { timeoutMs: 30_000 });
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    http,
    appId,
    cert,
    bin,
    dataDir,
    output: () => out,
    async token(kind, userId, channel, expireSecs = 3600) {
      const args = ['token', kind, '--app-id', appId, '--app-cert', cert, '--user-id', userId,
        '--expire', String(expireSecs)];
      if (kind === 'rtc') args.push('--channel', channel ?? '');
      const { stdout } = await execFileP(bin, args);
      return stdout.trim();
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await eventually('switchboard serve to exit', () => exited, { timeoutMs: 10_000 })
          .catch(() => child.kill('SIGKILL'));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy on 127.0.0.1:0 in front of the server, as crates/server/tests/common/proxy.rs:
 * `freeze()` stalls every connection (current and new) both ways, holding the bytes and
 * delivering them in order on `pass()`; `cut()` resets every current connection.
 */
export class FaultProxy {
  /** @param {number} upstreamPort */
  constructor(upstreamPort) {
    this.upstreamPort = upstreamPort;
    this.frozen = false;
    /** @type {Set<{ client: net.Socket, upstream: net.Socket, resume: () => void }>} */
    this.conns = new Set();
    /** Connections accepted so far. */
    this.accepted = 0;
    /** Every byte sent from the server to clients, kept when `capture` is set. */
    this.capture = false;
    /** @type {Buffer[]} */
    this.downstream = [];
    this.server = net.createServer((client) => this.#accept(client));
  }

  /** @returns {Promise<number>} the proxy's port */
  async listen() {
    await new Promise((r) => this.server.listen(0, '127.0.0.1', () => r(undefined)));
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('proxy has no port');
    this.port = a.port;
    return a.port;
  }

  /** @param {net.Socket} client */
  #accept(client) {
    this.accepted += 1;
    const upstream = net.connect(this.upstreamPort, '127.0.0.1');
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    /** @type {Buffer[]} */ const heldUp = [];
    /** @type {Buffer[]} */ const heldDown = [];
    const conn = {
      client,
      upstream,
      resume: () => {
        for (const b of heldUp.splice(0)) upstream.write(b);
        for (const b of heldDown.splice(0)) client.write(b);
      },
    };
    this.conns.add(conn);
    client.on('data', (b) => { if (this.frozen) heldUp.push(b); else upstream.write(b); });
    upstream.on('data', (b) => {
      if (this.capture) this.downstream.push(b);
      if (this.frozen) heldDown.push(b); else client.write(b);
    });
    const kill = () => {
      this.conns.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', kill);
    upstream.on('close', kill);
  }

  /** Stalls every connection, current and future, until `pass()`. */
  freeze() { this.frozen = true; }

  /** Forwards again, delivering held bytes first. */
  pass() {
    this.frozen = false;
    for (const c of this.conns) c.resume();
  }

  /** Resets every current connection (both sides); later ones are proxied. */
  cut() {
    for (const c of [...this.conns]) {
      c.client.resetAndDestroy();
      c.upstream.resetAndDestroy();
      this.conns.delete(c);
    }
  }

  /** Open connections. */
  get open() { return this.conns.size; }

  async close() {
    this.cut();
    await new Promise((r) => this.server.close(() => r(undefined)));
  }
}

const mime = /** @type {Record<string, string>} */ ({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
});

/**
 * Seed 002's code from typecheck/seed002.js as a classic script: the part below its
 * "unchanged" marker, with only the constructor's arguments pointed at the page's
 * settings (the seed's "appid" is not a valid app id).
 */
export function seed002Script() {
  const text = readFileSync(join(sdkRoot, 'typecheck', 'seed002.js'), 'utf8');
  const marker = '// ---- seed 002, unchanged ----';
  const body = text.slice(text.indexOf(marker));
  const ctor = 'new RTM("appid", "uid", rtmConfig)';
  if (!body.includes(ctor)) throw new Error('seed002.js changed: constructor line not found');
  return `const { RTM } = AgoraRTM;\n${body.replace(ctor, 'new RTM(SEED_APP_ID, SEED_USER_ID, { ...rtmConfig, ...SEED_CONFIG })')}`;
}

/**
 * Serves the test pages (test/browser/pages/) and the bundle at /agora-rtm.min.js on
 * 127.0.0.1:0.
 * @returns {Promise<{ origin: string, close: () => Promise<void> }>}
 */
export async function startStatic() {
  const pages = resolve(here, '..', 'pages');
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/seed002.js') {
      res.writeHead(200, { 'content-type': mime['.js'], 'cache-control': 'no-store' });
      res.end(seed002Script());
      return;
    }
    const file = path === '/agora-rtm.min.js' ? bundlePath : join(pages, path === '/' ? 'index.html' : path);
    if (!file.startsWith(pages) && file !== bundlePath) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': mime[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const a = server.address();
  if (a === null || typeof a === 'string') throw new Error('static server has no port');
  return {
    origin: `http://127.0.0.1:${a.port}`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r(undefined)); }),
  };
}

/**
 * Debian's Chromium, headless, with a fresh profile. Never a downloaded browser.
 * @returns {Promise<{ context: import('playwright-core').BrowserContext, close: () => Promise<void> }>}
 */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} not found: apt-get install -y chromium`);
  }
  const profile = mkdtempSync(join(tmpdir(), 'sb-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 900, height: 640 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Opens a test page, failing the test on page errors, and returns it once the bundle
 * has defined `AgoraRTM`.
 * @param {import('playwright-core').BrowserContext} context
 * @param {string} url
 * @param {string[]} log collects the page's console output and errors
 */
export async function openPage(context, url, log) {
  const page = await context.newPage();
  page.on('console', (m) => log.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.stack ?? e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => typeof (/** @type {any} */ (window)).AgoraRTM === 'object' && typeof (/** @type {any} */ (window)).T === 'object');
  return page;
}

/** Saves a screenshot under test/browser/screenshots/ and returns its path. */
export async function screenshot(/** @type {import('playwright-core').Page} */ page, /** @type {string} */ name) {
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, name);
  await page.screenshot({ path, animations: 'disabled' });
  return path;
}
