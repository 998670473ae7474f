#!/usr/bin/env node
// Dev server of the example web app: serves this directory and the SDK's browser
// bundle, and mints tokens so the app certificate never reaches the browser.
//
//   GET /config                      → { appId, url, room }
//   GET /token?user=ID               → { token }  RTM login token (switchboard token rtm)
//   GET /token?user=ID&channel=NAME  → { token }  RTC token for a stream channel
//
// The app id and certificate come from SWITCHBOARD_APP_ID / SWITCHBOARD_APP_CERT, or
// else from the app.toml that `switchboard serve` writes into its data dir on first start
// (--data-dir, default ./data). Tokens are made by shelling out to `switchboard token`
// (SWITCHBOARD_BIN, default: `switchboard` on PATH, else target/release or target/debug).
// DEVELOPMENT ONLY: it hands a token to anyone who asks for any user id; a real token
// server authenticates the user first.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

const execFileP = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string', default: process.env.SWITCHBOARD_DATA_DIR ?? './data' },
    url: { type: 'string', default: process.env.SWITCHBOARD_URL ?? 'ws://127.0.0.1:7400' },
    room: { type: 'string', default: 'lobby' },
  },
});

function findBin() {
  if (process.env.SWITCHBOARD_BIN) return process.env.SWITCHBOARD_BIN;
  for (const p of ['release', 'debug'].map((k) => join(repo, 'target', k, 'switchboard'))) {
    if (existsSync(p)) return p;
  }
  return 'switchboard';
}

function appCredentials() {
  const id = process.env.SWITCHBOARD_APP_ID;
  const cert = process.env.SWITCHBOARD_APP_CERT;
  if (id && cert) return { id, cert };
  const file = resolve(args['data-dir'], 'app.toml');
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    console.error(`no app credentials: set SWITCHBOARD_APP_ID and SWITCHBOARD_APP_CERT, or start ` +
      `\`switchboard serve\` first so that it writes ${file} (or pass --data-dir)`);
    process.exit(1);
  }
  const field = (k) => new RegExp(`^${k}\\s*=\\s*"([^"]*)"`, 'm').exec(text)?.[1];
  return { id: field('id'), cert: field('certificate') };
}

const bin = findBin();
const app = appCredentials();
const bundle = join(repo, 'sdk', 'js', 'dist', 'agora-rtm.min.js');
if (!existsSync(bundle)) {
  console.error(`${bundle} is missing: build the SDK first (npm --prefix sdk/js ci && npm --prefix sdk/js run build)`);
  process.exit(1);
}

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const files = new Set(['/index.html', '/app.js', '/style.css']);

/** A user id or channel name as api.md R2–R7 allow (the SDK re-checks it). */
const validName = (s) => typeof s === 'string' && s.length > 0 && Buffer.byteLength(s) <= 64 &&
  /^[a-zA-Z0-9 !#$%&()+\-:;<=.>?@[\]^_{}|~,]+$/.test(s) && !s.startsWith('_') && s !== 'null';

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  try {
    if (url.pathname === '/config') {
      return send(res, 200, { appId: app.id, url: args.url, room: args.room });
    }
    if (url.pathname === '/token') {
      const user = url.searchParams.get('user');
      const channel = url.searchParams.get('channel');
      if (!validName(user) || (channel !== null && !validName(channel))) {
        return send(res, 400, { error: 'bad user or channel name' });
      }
      const common = ['--app-id', app.id, '--app-cert', app.cert, '--user-id', user];
      const cmd = channel === null ? ['token', 'rtm', ...common] : ['token', 'rtc', ...common, '--channel', channel];
      const { stdout } = await execFileP(bin, cmd);
      return send(res, 200, { token: stdout.trim() });
    }
    if (url.pathname === '/agora-rtm.min.js') {
      return send(res, 200, readFileSync(bundle), 'text/javascript');
    }
    const path = url.pathname === '/' ? '/index.html' : url.pathname;
    if (files.has(path)) {
      return send(res, 200, readFileSync(join(here, path)), types[extname(path)]);
    }
    return send(res, 404, { error: 'not found' });
  } catch (e) {
    return send(res, 500, { error: String(e instanceof Error ? e.message : e) });
  }
});

server.listen(Number(args.port), args.host, () => {
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : args.port;
  console.log(`example web app on http://${args.host}:${port}/ (server ${args.url}, app ${app.id}, tokens by ${bin})`);
});
