// The example web app (examples/web) end to end: its dev server (token endpoint that
// shells out to `switchboard token`) in front of a real `switchboard serve`, two
// Chromium pages that join, see each other, chat and watch each other's cursor move.
// The screenshot it saves (screenshots/example-web.png) is the one docs/js-sdk.md shows.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';

import { eventually, launchBrowser, screenshot, sdkRoot, startServer } from './lib/harness.mjs';

/** @type {import('./lib/harness.mjs').Server} */ let server;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {import('node:child_process').ChildProcess} */ let dev;
let origin = '';
/** @type {string[]} */ const log = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const script = resolve(sdkRoot, '..', '..', 'examples', 'web', 'server.mjs');
  dev = spawn(process.execPath, [script, '--port', '0', '--url', server.url], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHBOARD_APP_ID: server.appId, SWITCHBOARD_APP_CERT: server.cert, SWITCHBOARD_BIN: server.bin },
  });
  let out = '';
  dev.stdout?.on('data', (d) => { out += d; });
  dev.stderr?.on('data', (d) => { out += d; });
  origin = await eventually('the example dev server to listen', () => {
    if (dev.exitCode !== null) throw new Error(`examples/web/server.mjs exited: ${out}`);
    return /on (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)?.[1];
  });
});

after(async () => {
  dev?.kill();
  await browser?.close();
  await server?.stop();
});

async function open(user) {
  const page = await browser.context.newPage();
  page.on('console', (m) => log.push(`[${user} ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[${user} pageerror] ${e.stack ?? e.message}`));
  page.on('dialog', (d) => { log.push(`[${user} dialog] ${d.message()}`); void d.dismiss(); });
  await page.goto(`${origin}/?user=${user}`);
  try {
    await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  } catch (e) {
    throw new Error(`${user} never got ready: ${e.message}\n${log.join('\n')}`);
  }
  return page;
}

test('examples/web token endpoint: tokens for valid names only, never the certificate', async () => {
  const config = await (await fetch(`${origin}/config`)).json();
  assert.deepEqual(config, { appId: server.appId, url: server.url, room: 'lobby' });
  const ok = await fetch(`${origin}/token?user=ana&channel=lobby-cursors`);
  assert.equal(ok.status, 200);
  const { token } = await ok.json();
  assert.match(token, /^007/);
  assert.ok(!token.includes(server.cert));
  for (const q of ['user=_reserved', 'user=', 'user=ana&channel=null', `user=${'x'.repeat(65)}`]) {
    const r = await fetch(`${origin}/token?${q}`);
    assert.equal(r.status, 400, q);
  }
  assert.equal((await fetch(`${origin}/server.mjs`)).status, 404, 'the dev server serves only the page files');
});

const members = (page) => page.$$eval('#members li', (els) => els.map((e) => e.textContent));

test('examples/web: chat, presence and live cursors between two pages', async () => {
  const ana = await open('ana');
  const ben = await open('ben');
  await eventually('both to see each other', async () =>
    JSON.stringify(await members(ana)) === JSON.stringify(['ana (you)', 'ben']) &&
    JSON.stringify(await members(ben)) === JSON.stringify(['ana', 'ben (you)']));

  await ana.fill('#text', 'hi ben, see my cursor?');
  await ana.press('#text', 'Enter');
  await ben.fill('#text', 'yes! it is right over the board');
  await ben.press('#text', 'Enter');
  for (const page of [ana, ben]) {
    await eventually('both chat lines on both pages', async () => {
      const lines = await page.$$eval('#chat li', (els) => els.map((e) => e.textContent));
      return lines.length === 2 && lines[0] === 'ana: hi ben, see my cursor?' &&
        lines[1] === 'ben: yes! it is right over the board';
    });
  }

  // Ana moves over the board; ben's page shows her cursor where she is (as a
  // fraction of the board), carried by topic messages of the stream channel.
  const box = await ana.locator('#board').boundingBox();
  assert.ok(box);
  const path = [[0.2, 0.3], [0.35, 0.4], [0.5, 0.45], [0.62, 0.5]];
  for (const [fx, fy] of path) {
    await ana.mouse.move(box.x + box.width * fx, box.y + box.height * fy, { steps: 4 });
  }
  const last = path[path.length - 1];
  await eventually('ben to see ana\'s cursor arrive', async () => {
    const pos = await ben.$eval('.cursor[data-user="ana"]', (el) => [parseFloat(el.style.left), parseFloat(el.style.top)])
      .catch(() => null);
    return pos && Math.abs(pos[0] - last[0] * 100) < 3 && Math.abs(pos[1] - last[1] * 100) < 3;
  }, { timeoutMs: 20_000 }).catch((e) => { throw new Error(`${e.message}\n${log.join('\n')}`); });
  // Ben's cursor, so that the picture shows two.
  const bbox = await ben.locator('#board').boundingBox();
  assert.ok(bbox);
  await ben.mouse.move(bbox.x + bbox.width * 0.3, bbox.y + bbox.height * 0.65, { steps: 3 });
  await eventually('ana to see ben\'s cursor', async () =>
    (await ana.$('.cursor[data-user="ben"]')) !== null, { timeoutMs: 20_000 });
  await screenshot(ben, 'example-web.png');

  // Ana leaves (logout): ben's member list and board drop her (REMOTE_LEAVE).
  await ana.click('#leave');
  await eventually('ben to see ana gone', async () =>
    JSON.stringify(await members(ben)) === JSON.stringify(['ben (you)']) &&
    (await ben.$('.cursor[data-user="ana"]')) === null, { timeoutMs: 30_000 });
  await eventually('ana\'s link badge to say IDLE', async () => (await ana.textContent('#link')) === 'IDLE');
  await ana.close();
  await ben.close();
});
