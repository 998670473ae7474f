// Browser end-to-end: storage (§6), locks (§7) and history (§8) through the browser
// bundle. Bob writes channel and user metadata, takes a lock and publishes messages
// kept in history; alice watches the events and reads them back.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { eventually, launchBrowser, openPage, startServer, startStatic } from './lib/harness.mjs';

/** @type {import('./lib/harness.mjs').Server} */ let server;
/** @type {Awaited<ReturnType<typeof startStatic>>} */ let web;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {string[]} */ const log = [];

before(async () => {
  server = await startServer();
  web = await startStatic();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
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

async function loggedIn(name) {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  await run(page, ([appId, user, url]) => T.create(appId, user, url), [server.appId, name, server.url]);
  const r = await run(page, (t) => T.attempt(() => T.rtm.login({ token: t })), await server.token('rtm', name));
  assert.equal(r.ok, true, `login of ${name}: ${JSON.stringify(r)}`);
  return page;
}

/** Runs `fn` in the page and asserts it resolved; returns the value. */
async function ok(page, fn, arg) {
  const r = await run(page, fn, arg);
  assert.equal(r.ok, true, JSON.stringify(r));
  return r.value;
}

test('storage, locks and history from the browser bundle', async () => {
  const alice = await loggedIn('alice');
  const bob = await loggedIn('bob');
  await ok(alice, () => T.attempt(() => T.rtm.subscribe('room', { withMetadata: true, withLock: true })));
  // R80: the subscriber's own storage and lock SNAPSHOTs.
  const storageSnap = await eventually('alice\'s storage SNAPSHOT', () => run(alice, () =>
    T.events.storage.find((e) => e.eventType === 'SNAPSHOT' && e.storageType === 'CHANNEL')));
  assert.deepEqual([storageSnap.channelType, storageSnap.channelName, storageSnap.data.totalCount], ['MESSAGE', 'room', 0]);
  await eventually('alice\'s lock SNAPSHOT', () => run(alice, () => T.events.lock.find((e) => e.eventType === 'SNAPSHOT')));

  // Channel metadata: set, then a compare-and-set update (§6.3).
  const set = await ok(bob, () => T.attempt(() => T.rtm.storage.setChannelMetadata('room', 'MESSAGE',
    [{ key: 'topic', value: 'chess' }, { key: 'round', value: '1' }], { addUserId: true, addTimeStamp: true })));
  assert.deepEqual([set.channelName, set.channelType, set.totalCount], ['room', 'MESSAGE', 2]);
  const meta = await ok(bob, () => T.attempt(() => T.rtm.storage.getChannelMetadata('room', 'MESSAGE')));
  assert.equal(meta.metadata.topic.value, 'chess');
  assert.equal(meta.metadata.topic.authorUid, 'bob');
  assert.ok(meta.metadata.topic.updated > 0);
  const rev = meta.metadata.round.revision;
  await ok(bob, (r) => T.attempt(() => T.rtm.storage.updateChannelMetadata('room', 'MESSAGE', [{ key: 'round', value: '2', revision: r }])), rev);
  const stale = await run(bob, (r) => T.attempt(() => T.rtm.storage.updateChannelMetadata('room', 'MESSAGE', [{ key: 'round', value: '3', revision: r }])), rev);
  assert.deepEqual([stale.ok, stale.errorCode], [false, -12014], `R138: stale revision: ${JSON.stringify(stale)}`);
  // R148: UPDATE events carry the complete metadata after each change.
  const update = await eventually('alice to see round 2', () => run(alice, () =>
    T.events.storage.find((e) => e.eventType === 'UPDATE' && e.data.metadata.round && e.data.metadata.round.value === '2')));
  assert.equal(update.data.metadata.topic.value, 'chess');
  assert.equal(update.data.totalCount, 2);

  // User metadata with a subscription.
  await ok(alice, () => T.attempt(() => T.rtm.storage.subscribeUserMetadata('bob')));
  await ok(bob, () => T.attempt(() => T.rtm.storage.setUserMetadata([{ key: 'avatar', value: 'owl.png' }])));
  const userEvent = await eventually('alice to see bob\'s avatar', () => run(alice, () =>
    T.events.storage.find((e) => e.storageType === 'USER' && e.data.metadata.avatar)));
  assert.deepEqual([userEvent.channelType, userEvent.publisher, userEvent.data.metadata.avatar.value], ['USER', 'bob', 'owl.png']);
  const userMeta = await ok(alice, () => T.attempt(() => T.rtm.storage.getUserMetadata({ userId: 'bob' })));
  assert.equal(userMeta.userId, 'bob');
  assert.equal(userMeta.metadata.avatar.value, 'owl.png');

  // Locks: bob defines and takes one; alice cannot take it (§7).
  await ok(bob, () => T.attempt(() => T.rtm.lock.setLock('room', 'MESSAGE', 'referee', { ttl: 20 })));
  const acquired = await ok(bob, () => T.attempt(() => T.rtm.lock.acquireLock('room', 'MESSAGE', 'referee')));
  assert.equal(acquired.lockName, 'referee');
  const taken = await run(alice, () => T.attempt(() => T.rtm.lock.acquireLock('room', 'MESSAGE', 'referee')));
  assert.deepEqual([taken.ok, taken.errorCode], [false, -14007], JSON.stringify(taken));
  const locks = await ok(alice, () => T.attempt(() => T.rtm.lock.getLock('room', 'MESSAGE')));
  assert.deepEqual(locks.lockDetails.map((d) => [d.lockName, d.owner, d.ttl]), [['referee', 'bob', 20]]);
  const lockEvents = await eventually('alice to see SET then ACQUIRED', async () => {
    const e = await run(alice, () => T.events.lock.filter((x) => x.lockName === 'referee').map((x) => [x.eventType, x.owner]));
    return e.length >= 2 ? e : null;
  });
  assert.deepEqual(lockEvents.slice(0, 2), [['SET', ''], ['ACQUIRED', 'bob']]);
  await ok(bob, () => T.attempt(() => T.rtm.lock.releaseLock('room', 'MESSAGE', 'referee')));
  await eventually('alice to see RELEASED', () => run(alice, () =>
    T.events.lock.some((x) => x.eventType === 'RELEASED' && x.owner === '')));

  // History: messages kept with storeInHistory come back newest first (§8).
  for (const text of ['one', 'two', 'three']) {
    await ok(bob, (t) => T.attempt(() => T.rtm.publish('room', t, { storeInHistory: true, customType: 'note' })), text);
  }
  await ok(bob, () => T.attempt(() => T.rtm.publish('room', 'not kept')));
  const page = await ok(alice, () => T.attempt(() => T.rtm.history.getMessages('room', 'MESSAGE', { messageCount: 10 })));
  assert.deepEqual(page.messageList.map((m) => [m.message, m.publisher, m.customType, m.messageType]), [
    ['three', 'bob', 'note', 'STRING'], ['two', 'bob', 'note', 'STRING'], ['one', 'bob', 'note', 'STRING'],
  ]);
  assert.equal(page.count, 3);
  for (const p of [alice, bob]) {
    await run(p, () => T.rtm.logout());
    await p.close();
  }
});
