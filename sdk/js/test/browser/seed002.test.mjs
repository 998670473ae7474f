// Seed 002's stream channel SNAPSHOT diffing code, unchanged, in a Chromium page (R60,
// api.md §9.4): bob's page runs it; while bob's link is frozen carol joins the topic and
// alice leaves it; after bob's SDK reconnects, a fresh topic SNAPSHOT arrives and the
// seed's own diff names alice as having left and carol as having joined (or carol came
// as a REMOTE_JOIN first, which the seed's cache takes in just the same).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { FaultProxy, eventually, launchBrowser, openPage, screenshot, startServer, startStatic } from './lib/harness.mjs';

/** @type {import('./lib/harness.mjs').Server} */ let server;
/** @type {Awaited<ReturnType<typeof startStatic>>} */ let web;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {FaultProxy} */ let proxy;
/** @type {string[]} */ const log = [];

before(async () => {
  server = await startServer();
  web = await startStatic();
  browser = await launchBrowser();
  proxy = new FaultProxy(server.port);
  await proxy.listen();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
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

async function member(name) {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  await run(page, ([appId, user, url]) => T.create(appId, user, url), [server.appId, name, server.url]);
  const r = await run(page, (t) => T.attempt(() => T.rtm.login({ token: t })), await server.token('rtm', name));
  assert.equal(r.ok, true, JSON.stringify(r));
  const j = await run(page, (t) => T.attempt(() => T.stream('arena').join({ token: t })), await server.token('rtc', name, 'arena'));
  assert.equal(j.ok, true, JSON.stringify(j));
  return page;
}

test('seed 002\'s SNAPSHOT diffing code works unchanged across a reconnect (R60)', async () => {
  const alice = await member('alice');
  const jt = await run(alice, () => T.attempt(() => T.stream('arena').joinTopic('moves', { meta: 'white' })));
  assert.equal(jt.ok, true, JSON.stringify(jt));

  const q = new URLSearchParams({ app: server.appId, user: 'bob', url: `ws://127.0.0.1:${proxy.port}` });
  const bob = await openPage(browser.context, `${web.origin}/seed002.html?${q}`, log);
  const r = await run(bob, (t) => T.attempt(() => rtm.login({ token: t })), await server.token('rtm', 'bob'));
  assert.equal(r.ok, true, JSON.stringify(r));
  const j = await run(bob, (t) => T.attempt(() => rtm.createStreamChannel('arena').join({ token: t })), await server.token('rtc', 'bob', 'arena'));
  assert.equal(j.ok, true, JSON.stringify(j));

  // The join's SNAPSHOT: the seed's diff sees alice join and caches her.
  const first = await eventually('the seed code to diff the join SNAPSHOT', () => run(bob, () => T.seedDiffs[0]));
  assert.deepEqual(first.remoteJoined, { moves: ['alice'] });
  assert.deepEqual(first.remoteLeaved, { moves: [] });
  assert.deepEqual(first.cache, { arena: { moves: ['alice'] } });

  // While bob's network is stalled: carol joins the topic, alice leaves it.
  proxy.freeze();
  const carol = await member('carol');
  const cj = await run(carol, () => T.attempt(() => T.stream('arena').joinTopic('moves', { meta: 'black' })));
  assert.equal(cj.ok, true, JSON.stringify(cj));
  const al = await run(alice, () => T.attempt(() => T.stream('arena').leaveTopic('moves')));
  assert.equal(al.ok, true, JSON.stringify(al));
  await eventually('bob\'s SDK to notice the stalled link', () => run(bob, () => T.linkState('MESSAGE') !== 'CONNECTED'),
    { timeoutMs: 30_000 });
  proxy.pass();
  await eventually('bob to reconnect', () => run(bob, () => T.reconnects('MESSAGE').length === 1), { timeoutMs: 60_000 });

  // R60: a fresh topic SNAPSHOT after the reconnect, listing carol and not alice.
  const snap = await eventually('a topic SNAPSHOT after the reconnect', () => run(bob, () =>
    T.events.topic.filter((e) => e.eventType === 'SNAPSHOT')[1]), { timeoutMs: 20_000 });
  const moves = snap.topicInfos.find((t) => t.topicName === 'moves');
  assert.deepEqual(moves && moves.publishers, [{ publisherUserId: 'carol', publisherMeta: 'black' }], JSON.stringify(snap));

  // The seed's own diff of that SNAPSHOT (the last diff it logged).
  const diffs = await run(bob, () => T.seedDiffs);
  const afterSnap = diffs.at(-1);
  assert.deepEqual(afterSnap.remoteLeaved, { moves: ['alice'] }, JSON.stringify(diffs));
  const carolAsEvent = await run(bob, () => T.events.topic.some((e) => e.eventType === 'REMOTE_JOIN' && e.publisher === 'carol'));
  assert.deepEqual(afterSnap.remoteJoined, { moves: carolAsEvent ? [] : ['carol'] }, JSON.stringify(diffs));
  assert.ok(afterSnap.cache.arena.moves.includes('carol'), JSON.stringify(afterSnap.cache));
  await screenshot(bob, 'seed002-bob.png');
  for (const page of [alice, bob, carol]) {
    await run(page, () => (typeof rtm !== 'undefined' ? rtm : T.rtm).logout());
    await page.close();
  }
});
