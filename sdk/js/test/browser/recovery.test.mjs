// Browser end-to-end recovery: two Chromium pages, each behind its own fault proxy,
// publish numbered channel, USER and topic messages to each other without pause while
// the test freezes or cuts one page's link ten times (alternating pages and fault
// kinds), all within presenceTimeout. Every reconnection must resume the session
// (R52, R55), nobody may see the other leave or time out, and every message must
// arrive exactly once and in publish order (R58, R59, R72).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { FaultProxy, eventually, launchBrowser, openPage, screenshot, startServer, startStatic } from './lib/harness.mjs';

/** @type {import('./lib/harness.mjs').Server} */ let server;
/** @type {Awaited<ReturnType<typeof startStatic>>} */ let web;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {string[]} */ const log = [];
/** @type {FaultProxy[]} */ const proxies = [];

before(async () => {
  server = await startServer();
  web = await startStatic();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const p of proxies) await p.close();
  await web?.close();
  await server?.stop();
});

async function run(page, fn, arg) {
  try {
    return await page.evaluate(fn, arg);
  } catch (e) {
    throw new Error(`${e.message}\n--- page log ---\n${log.slice(-30).join('\n')}`);
  }
}

/** 1 … n */
const upTo = (n) => Array.from({ length: n }, (_, i) => i + 1);

test('every message once and in order across 10 freezes and cuts within presenceTimeout', { timeout: 600_000 }, async () => {
  const users = ['alice', 'bob'];
  /** @type {Record<string, { page: import('playwright-core').Page, proxy: FaultProxy }>} */
  const p = {};
  for (const name of users) {
    const proxy = new FaultProxy(server.port);
    proxies.push(proxy);
    const port = await proxy.listen();
    const page = await openPage(browser.context, `${web.origin}/`, log);
    await run(page, ([appId, user, url]) => T.create(appId, user, url, { presenceTimeout: 300, heartbeatInterval: 5 }),
      [server.appId, name, `ws://127.0.0.1:${port}`]);
    const token = await server.token('rtm', name);
    const r = await run(page, (t) => T.attempt(() => T.rtm.login({ token: t })), token);
    assert.equal(r.ok, true, `login of ${name}: ${JSON.stringify(r)}`);
    p[name] = { page, proxy };
  }
  for (const name of users) {
    const { page } = p[name];
    const s = await run(page, () => T.attempt(() => T.rtm.subscribe('room')));
    assert.equal(s.ok, true, JSON.stringify(s));
    const rtc = await server.token('rtc', name, 'arena');
    const j = await run(page, (t) => T.attempt(() => T.stream('arena').join({ token: t })), rtc);
    assert.equal(j.ok, true, JSON.stringify(j));
    const jt = await run(page, () => T.attempt(() => T.stream('arena').joinTopic('ticks')));
    assert.equal(jt.ok, true, JSON.stringify(jt));
  }
  for (const name of users) {
    const peer = name === 'alice' ? 'bob' : 'alice';
    const { page } = p[name];
    await eventually(`${name} to see ${peer} in room`, () => run(page, (peerId) => T.events.presence.some((e) =>
      e.channelName === 'room' && ((e.eventType === 'REMOTE_JOIN' && e.publisher === peerId) ||
        (e.eventType === 'SNAPSHOT' && (e.snapshot || []).some((u) => u.userId === peerId)))), peer));
    const f = await run(page, (peerId) => T.attempt(() => T.stream('arena').subscribeTopic('ticks', { users: [peerId] })), peer);
    assert.equal(f.ok, true, JSON.stringify(f));
    assert.deepEqual(f.value.succeedUsers, [peer]);
  }

  // Numbered traffic both ways on all three kinds of channel.
  for (const name of users) {
    const peer = name === 'alice' ? 'bob' : 'alice';
    await run(p[name].page, (peerId) => {
      T.startLoop('channel', 'channel', 'room');
      T.startLoop('user', 'user', peerId);
      T.startLoop('topic', 'topic', { channel: 'arena', topic: 'ticks' });
    }, peer);
  }
  const sentBy = async (name) => run(p[name].page, () =>
    Object.fromEntries(Object.entries(T.loops).map(([k, l]) => [k, l.acked.length])));
  // Traffic flows before the first fault.
  await eventually('traffic to flow', async () => {
    const r = await run(p.bob.page, () => T.received('alice'));
    return r.channel.length > 5 && r.user.length > 5 && r.topic.length > 5;
  });

  const started = Date.now();
  const faults = [];
  for (let i = 0; i < 10; i += 1) {
    const name = users[i % 2];
    const kind = i % 4 < 2 ? 'freeze' : 'cut';
    const { page, proxy } = p[name];
    const before = await run(page, () => T.reconnects('MESSAGE').length);
    const sentBefore = await sentBy(name === 'alice' ? 'bob' : 'alice');
    if (kind === 'freeze') {
      // A stalled network: nothing moves either way until the SDK gives the link up
      // (1.5 × heartbeatInterval), then the network comes back.
      proxy.freeze();
      await eventually(`${name}'s link to be DISCONNECTED during freeze ${i}`, () =>
        run(page, () => T.linkState('MESSAGE') !== 'CONNECTED'), { timeoutMs: 30_000 });
      proxy.pass();
    } else {
      proxy.cut();
    }
    const recon = await eventually(`${name} to reconnect after ${kind} ${i}`, () => run(page, (n) => {
      const r = T.reconnects('MESSAGE');
      return r.length > n ? r[r.length - 1] : null;
    }, before), { timeoutMs: 60_000 });
    faults.push({ i, name, kind, isResumed: recon.isResumed, unrestored: recon.unrestoredChannels });
    assert.equal(recon.isResumed, true, `R52/R55: ${kind} ${i} of ${name} resumed: ${JSON.stringify(recon)}`);
    assert.deepEqual(recon.unrestoredChannels, [], `R56: nothing unrestored after ${kind} ${i}`);
    // The peer kept publishing meanwhile; wait until it has sent more, so that every
    // fault overlaps live traffic.
    await eventually('the peer to keep publishing', async () => {
      const now = await sentBy(name === 'alice' ? 'bob' : 'alice');
      return now.channel > sentBefore.channel + 3 && now.topic > sentBefore.topic + 3;
    });
  }
  const elapsedMs = Date.now() - started;
  assert.ok(elapsedMs < 300_000, `all faults within presenceTimeout (300 s): ${elapsedMs} ms`);

  const totals = {};
  for (const name of users) totals[name] = await run(p[name].page, () => T.stopLoops());
  for (const name of users) {
    for (const [kind, t] of Object.entries(totals[name])) {
      assert.deepEqual(t.failed, [], `R59: ${name}'s ${kind} publishes all succeeded across the faults`);
      assert.ok(t.acked > 20, `${name} sent ${t.acked} ${kind} messages`);
    }
  }
  for (const name of users) {
    const peer = name === 'alice' ? 'bob' : 'alice';
    const want = totals[peer];
    const got = await eventually(`${name} to receive everything ${peer} sent`, async () => {
      const r = await run(p[name].page, (x) => T.received(x), peer);
      return r.channel.length >= want.channel.acked && r.user.length >= want.user.acked &&
        r.topic.length >= want.topic.acked ? r : null;
    }, { timeoutMs: 30_000 }).catch(async (e) => {
      const r = await run(p[name].page, (x) => T.received(x), peer);
      throw new Error(`${e.message}\nreceived counts: channel ${r.channel.length}/${want.channel.acked}, user ${r.user.length}/${want.user.acked}, topic ${r.topic.length}/${want.topic.acked}`);
    });
    // Exactly once and in order: the received sequence IS 1…n.
    assert.deepEqual(got.channel, upTo(want.channel.acked), `${name}: channel messages of ${peer}`);
    assert.deepEqual(got.user, upTo(want.user.acked), `${name}: USER messages of ${peer}`);
    assert.deepEqual(got.topic, upTo(want.topic.acked), `${name}: topic messages of ${peer}`);
    // A subscribed publisher also gets its own channel messages (R69), once each.
    const own = await run(p[name].page, (x) => T.received(x), name);
    assert.deepEqual(own.channel, upTo(totals[name].channel.acked), `${name}: own channel messages`);
    // R52: the peer never appeared to leave or time out.
    const gone = await run(p[name].page, (x) => T.events.presence.filter((e) => e.publisher === x &&
      (e.eventType === 'REMOTE_LEAVE' || e.eventType === 'REMOTE_TIMEOUT')), peer);
    assert.deepEqual(gone, [], `${name} saw no REMOTE_LEAVE/REMOTE_TIMEOUT of ${peer}`);
    // R47/R49: each fault shows as DISCONNECTED then CONNECTING/AUTO_RECONNECT.
    const states = await run(p[name].page, () => T.events.linkState.filter((e) => e.serviceType === 'MESSAGE')
      .map((e) => `${e.currentState}/${e.operation}/${e.reasonCode}`));
    assert.ok(states.includes('CONNECTING/AUTO_RECONNECT/AUTO_RECONNECT'), states.join('\n'));
    assert.equal(states.filter((s) => s.startsWith('CONNECTED/RECONNECTED/RECONNECT_SUCCESS')).length, 5,
      states.join('\n'));
    await eventually(`${name}'s page to render`, () => run(p[name].page, () =>
      document.querySelector('#counts').textContent.includes('5 resumed')));
    await screenshot(p[name].page, `recovery-${name}.png`);
  }
  console.log(JSON.stringify({ elapsedMs, faults, totals: Object.fromEntries(Object.entries(totals)
    .map(([n, t]) => [n, Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.acked]))])) }));
});
