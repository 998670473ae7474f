// Browser end-to-end of the web console (issue 17, docs/console.md): a real
// `switchboard serve` with an HTTP side and an app with API credentials, the console
// at /console in Debian's Chromium, and an SDK client (the CDN bundle in another page)
// that the console must see: it appears in the overview's counters and in its
// channel's member list with its presence state, a message it publishes shows in the
// channel's live tail, the console's publish form reaches it, and a kick from the
// users page ends its session (link state FAILED). Screenshots of the overview and of
// the channel go to docs/console/ (referenced by docs/console.md).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';

import { eventually, launchBrowser, openPage, sdkRoot, startServer, startStatic } from './lib/harness.mjs';

/** docs/console/ of the repository: the screenshots docs/console.md shows. */
const shotDir = resolve(sdkRoot, '..', '..', 'docs', 'console');

/** @type {import('./lib/harness.mjs').Server & { ws: string, key: string, secret: string }} */
let server;
/** @type {Awaited<ReturnType<typeof startStatic>>} */ let web;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {string[]} */ const log = [];

/** `switchboard serve` with its HTTP side, from a config file whose app has an API key and secret. */
async function startConsoleServer() {
  const key = 'console-test';
  const secret = randomBytes(18).toString('base64url');
  const s = await startServer([], {
    http: true,
    config: (appId, cert) =>
      `[[apps]]\nid = "${appId}"\ncertificate = "${cert}"\napi_key = "${key}"\napi_secret = "${secret}"\n`,
  });
  return { ...s, ws: s.url, key, secret };
}

async function token(userId) {
  return server.token('rtm', userId);
}

before(async () => {
  server = await startConsoleServer();
  web = await startStatic();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await web?.close();
  await server?.stop();
});

/** page.evaluate with the pages' log in the failure. */
async function run(page, fn, arg) {
  try {
    return await page.evaluate(fn, arg);
  } catch (e) {
    throw new Error(`${e.message}\n--- page log ---\n${log.slice(-30).join('\n')}`);
  }
}

/** The text of `selector` on `page` once `ok(text)` holds. */
async function textUntil(page, what, selector, ok) {
  return eventually(what, async () => {
    const t = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => null);
    return t !== null && ok(t) ? t : null;
  });
}

async function consolePage() {
  const page = await browser.context.newPage();
  page.on('console', (m) => log.push(`[console ${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[console pageerror] ${e.stack ?? e.message}`));
  page.on('dialog', (d) => { d.accept(); });
  return page;
}

async function shot(page, name) {
  mkdirSync(shotDir, { recursive: true });
  await page.screenshot({ path: join(shotDir, name), animations: 'disabled', fullPage: true });
}

test('console: login refuses a wrong secret, keeps credentials out of the URL and localStorage', async () => {
  const page = await consolePage();
  await page.goto(`${server.http}/console`);
  await page.locator('#login input[name=appId]').fill(server.appId);
  await page.locator('#login input[name=key]').fill(server.key);
  await page.locator('#login input[name=secret]').fill('not the secret');
  await page.locator('#login button[type=submit]').click();
  const err = await textUntil(page, 'the login error', '#login-error', (t) => t.length > 0);
  assert.match(err, /Login failed: .*-19007/);
  assert.equal(await page.locator('#nav').isHidden(), true);
  // The page's answers carry a CSP that allows nothing from elsewhere.
  const resp = await page.request.get(`${server.http}/console`);
  assert.match(resp.headers()['content-security-policy'] ?? '', /default-src 'none'; script-src 'self'/);
  assert.equal((await page.request.get(`${server.http}/console/nope.js`)).status(), 404);
  await page.close();
});

test('console: overview, channel members and tail, publish form, kick', { timeout: 180_000 }, async () => {
  const page = await consolePage();
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`${server.http}/console`);
  // Logs in with the keyboard only: focus starts in the first field.
  await page.locator('#login input[name=appId]').waitFor();
  await page.keyboard.type(server.appId);
  await page.keyboard.press('Tab');
  await page.keyboard.type(server.key);
  await page.keyboard.press('Tab');
  await page.keyboard.type(server.secret);
  await page.keyboard.press('Enter');
  await page.locator('#stat-connections').waitFor();
  assert.ok(!page.url().includes(server.secret) && !page.url().includes(server.key), page.url());
  assert.equal(await run(page, () => localStorage.length), 0);
  // Nobody connected yet: the server's counters say 0.
  await textUntil(page, 'connections 0 in the overview', '#stat-connections', (t) => t === '0');
  await textUntil(page, 'sessions 0 in the overview', '#stat-app-sessions', (t) => t === '0');

  // An SDK client connects, subscribes with presence and sets a state.
  const client = await openPage(browser.context, `${web.origin}/`, log);
  await run(client, ([appId, url]) => T.create(appId, 'alice', url), [server.appId, server.ws]);
  const login = await run(client, (t) => T.attempt(() => T.rtm.login({ token: t })), await token('alice'));
  assert.equal(login.ok, true, JSON.stringify(login));
  const sub = await run(client, () => T.attempt(() => T.rtm.subscribe('lobby', { withPresence: true })));
  assert.equal(sub.ok, true, JSON.stringify(sub));
  const st = await run(client, () => T.attempt(() => T.rtm.presence.setState('lobby', 'MESSAGE', { mood: 'curious' })));
  assert.equal(st.ok, true, JSON.stringify(st));

  // The overview sees it (polled from the server's /stats every second).
  await textUntil(page, 'connections 1 in the overview', '#stat-connections', (t) => t === '1');
  await textUntil(page, 'sessions 1 in the overview', '#stat-app-sessions', (t) => t === '1');
  // Three publishes show in the totals (message channels) and in the rate chart.
  for (let i = 1; i <= 3; i += 1) {
    const r = await run(client, (n) => T.attempt(() => T.rtm.publish('lobby', `warm-up ${n}`)), i);
    assert.equal(r.ok, true, JSON.stringify(r));
  }
  await eventually('3 message publishes in the overview totals', async () => {
    const cells = await page.locator('#totals tr', { hasText: 'message' }).first().locator('td').allTextContents().catch(() => []);
    return cells[0] === 'message' && cells[2] === '3';
  });
  // The charts have a few seconds of samples before the screenshot.
  await eventually('the connections chart to have samples', () => run(page, () => {
    const l = document.querySelector('#chart-connections polyline');
    return l !== null && (l.getAttribute('points') ?? '').split(' ').length >= 6;
  }));
  await shot(page, 'overview.png');

  // The channel list shows lobby with its member; its page lists alice with her state.
  await page.locator('nav a[href="#/channels"]').click();
  const row = page.locator('#channel-list tr', { hasText: 'lobby' });
  await eventually('lobby in the channel list with 1 member', async () => {
    const cells = await row.locator('td').allTextContents().catch(() => []);
    return cells[0] === 'lobby' && cells[1] === 'message' && cells[2] === '1';
  });
  await page.locator('#channel-search').fill('no-such-channel');
  await textUntil(page, 'the search to filter lobby out', '#channel-list', (t) => t.includes('No channels match'));
  await page.locator('#channel-search').fill('lob');
  await row.locator('a').click();
  await eventually('alice in lobby\'s members with her state', async () => {
    const t = await page.locator('#members').textContent().catch(() => '');
    return (await page.locator('#members [data-member="alice"]').count()) === 1 && t?.includes('mood') && t.includes('curious');
  });

  // A message the client publishes reaches the live tail.
  const pub = await run(client, () => T.attempt(() => T.rtm.publish('lobby', 'hello from alice', { customType: 'chat' })));
  assert.equal(pub.ok, true, JSON.stringify(pub));
  await textUntil(page, 'the message in the live tail', '#tail', (t) => t.includes('alice') && t.includes('hello from alice'));

  // The console's publish form reaches the client, and the tail shows it too.
  await page.locator('form.publish textarea[name=message]').fill('hello from the console');
  await page.locator('form.publish input[name=store]').check();
  await page.locator('form.publish button[type=submit]').click();
  await eventually('alice to receive the console\'s message', () => run(client,
    () => T.events.message.some((m) => m.message === 'hello from the console' && m.publisher === 'server')));
  await textUntil(page, 'the console\'s message in the tail', '#tail', (t) => t.includes('hello from the console'));
  // Stored in history (the form's checkbox): the history section lists it.
  await textUntil(page, 'the stored message in the history', '#history', (t) => t.includes('hello from the console'));
  await shot(page, 'channel.png');

  // The users page: alice's channels (whereNow), then a kick ends her session.
  await page.locator('nav a[href="#/users"]').click();
  await page.locator('#user-list [data-user="alice"]').click();
  await textUntil(page, 'alice\'s channels', '#user-detail', (t) => t.includes('lobby'));
  await page.locator('#kick').click();
  await eventually('alice\'s client to go FAILED', () => run(client, () => T.linkState('MESSAGE') === 'FAILED'));
  await textUntil(page, 'alice gone from the users list', '#user-list', (t) => t.includes('No sessions match'));
  await page.locator('nav a[href="#/overview"]').click();
  await textUntil(page, 'sessions 0 in the overview after the kick', '#stat-app-sessions', (t) => t === '0');
  await client.close();
  await page.close();
});

test('console: the config page masks the secrets; phone width and dark scheme are readable', async () => {
  const page = await consolePage();
  await page.setViewportSize({ width: 390, height: 800 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.goto(`${server.http}/console`);
  await page.locator('#login input[name=appId]').fill(server.appId);
  await page.locator('#login input[name=key]').fill(server.key);
  await page.locator('#login input[name=secret]').fill(server.secret);
  await page.locator('#login button[type=submit]').click();
  await page.locator('nav a[href="#/config"]').click();
  const text = await textUntil(page, 'the config page', '#config', (t) => t.includes('api_secret'));
  assert.ok(!text.includes(server.secret), 'the API secret is shown');
  assert.ok(!text.includes(server.cert), 'the certificate is shown');
  assert.ok(text.includes(server.key), 'the API key is shown');
  assert.ok(text.includes('publish_rate_per_channel'));
  // Nothing wider than the phone's screen, and the dark palette applies.
  const layout = await run(page, () => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
    bg: getComputedStyle(document.body).backgroundColor,
  }));
  assert.ok(layout.scroll <= layout.width, JSON.stringify(layout));
  assert.equal(layout.bg, 'rgb(17, 20, 24)');
  await page.close();
});
