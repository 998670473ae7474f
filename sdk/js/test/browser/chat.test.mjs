// Browser end-to-end: two Chromium pages load the minified bundle with a <script> tag
// (global AgoraRTM, as seed 003's CDN setup), log in to a real `switchboard serve`,
// chat in a message channel, see each other's presence and exchange topic messages in
// a stream channel. Screenshots go to test/browser/screenshots/.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { eventually, launchBrowser, openPage, screenshot, startServer, startStatic } from './lib/harness.mjs';

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

/** page.evaluate with a readable failure that includes the page's console. */
async function run(page, fn, arg) {
  try {
    return await page.evaluate(fn, arg);
  } catch (e) {
    throw new Error(`${e.message}\n--- page log ---\n${log.slice(-30).join('\n')}`);
  }
}

async function loggedIn(name) {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  const token = await server.token('rtm', name);
  await run(page, ([appId, user, url]) => T.create(appId, user, url), [server.appId, name, server.url]);
  const r = await run(page, (t) => T.attempt(() => T.rtm.login({ token: t })), token);
  assert.equal(r.ok, true, `login of ${name}: ${JSON.stringify(r)}`);
  assert.equal(typeof r.value.timestamp, 'number');
  return page;
}

test('module surface of the global AgoraRTM (api.md §1.9)', async () => {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  const s = await run(page, () => ({
    keys: Object.keys(AgoraRTM).sort(),
    rtm: typeof AgoraRTM.RTM,
    version: AgoraRTM.VERSION,
    build: typeof AgoraRTM.BUILD,
    setArea: typeof AgoraRTM.setArea,
    getParameter: typeof AgoraRTM.getParameter,
    setParameter: typeof AgoraRTM.setParameter,
    baseError: typeof AgoraRTM.RTMBaseError,
    channelTypeEnum: AgoraRTM.constantsType && AgoraRTM.constantsType.ChannelTypeEnum
      && AgoraRTM.constantsType.ChannelTypeEnum.USER,
    areaGlobal: AgoraRTM.constantsType && AgoraRTM.constantsType.AreaCode
      && AgoraRTM.constantsType.AreaCode.GLOBAL,
    messageType: AgoraRTM.constantsType && AgoraRTM.constantsType.MessageType
      && AgoraRTM.constantsType.MessageType.BINARY,
  }));
  assert.equal(s.rtm, 'function');
  assert.equal(typeof s.version, 'string');
  assert.match(s.version, /^2\./);
  assert.equal(s.build, 'string');
  assert.equal(s.setArea, 'function');
  assert.equal(s.getParameter, 'function');
  assert.equal(s.setParameter, 'function');
  assert.equal(s.baseError, 'function');
  assert.equal(s.channelTypeEnum, 3);
  assert.equal(s.areaGlobal, 'GLOBAL');
  assert.equal(s.messageType, 'BINARY');
  // R1: a bad app id throws RTMBaseError -10003 synchronously, no network.
  const bad = await run(page, () => {
    try {
      new AgoraRTM.RTM('not-an-app-id', 'alice');
      return null;
    } catch (e) {
      return { isBase: e instanceof AgoraRTM.RTMBaseError, code: e.errorCode };
    }
  });
  assert.deepEqual(bad, { isBase: true, code: -10003 });
  await page.close();
});

test('two pages chat in a message channel, see each other\'s presence and exchange topic messages', async () => {
  const alice = await loggedIn('alice');
  const bob = await loggedIn('bob');

  // R32-style link states of the login (api.md §3.1, §11).
  const aliceLink = await run(alice, () => T.events.linkState.map((e) =>
    [e.serviceType, e.previousState, e.currentState, e.operation, e.reasonCode]));
  assert.deepEqual(aliceLink.slice(0, 2), [
    ['MESSAGE', 'IDLE', 'CONNECTING', 'LOGIN', 'LOGIN'],
    ['MESSAGE', 'CONNECTING', 'CONNECTED', 'LOGIN', 'LOGIN_SUCCESS'],
  ]);

  // Message channel with presence.
  const subA = await run(alice, () => T.attempt(() => T.rtm.subscribe('room', { withPresence: true })));
  assert.deepEqual([subA.ok, subA.value && subA.value.channelName], [true, 'room']);
  const subB = await run(bob, () => T.attempt(() => T.rtm.subscribe('room')));
  assert.equal(subB.ok, true, JSON.stringify(subB));

  // Alice sees bob join (REMOTE_JOIN); bob's SNAPSHOT lists alice (§9.3).
  const join = await eventually('alice to see REMOTE_JOIN of bob', () => run(alice, () =>
    T.events.presence.find((e) => e.eventType === 'REMOTE_JOIN' && e.publisher === 'bob')));
  assert.equal(join.channelType, 'MESSAGE');
  assert.equal(join.channelName, 'room');
  assert.equal(typeof join.timestamp, 'number');
  const snap = await eventually('bob\'s presence SNAPSHOT', () => run(bob, () =>
    T.events.presence.find((e) => e.eventType === 'SNAPSHOT' && e.channelName === 'room')));
  assert.ok(snap.snapshot.some((u) => u.userId === 'alice'), JSON.stringify(snap));
  assert.equal(snap.publisher, '');

  // whoNow sees both (§5.1).
  const who = await run(bob, () => T.attempt(() => T.rtm.presence.whoNow('room', 'MESSAGE')));
  assert.equal(who.ok, true, JSON.stringify(who));
  assert.deepEqual(who.value.occupants.map((o) => o.userId).sort(), ['alice', 'bob']);
  assert.equal(who.value.totalOccupancy, 2);

  // Chat: a string with customType, a binary payload, a USER message (§3.3, §9.2).
  const lines = [
    ['alice', 'hi bob, switchboard here'],
    ['bob', 'hello alice! same SDK, own server'],
    ['alice', 'presence, topics, recovery: all in the browser bundle'],
  ];
  for (const [who, text] of lines) {
    const page = who === 'alice' ? alice : bob;
    const r = await run(page, (t) => T.attempt(() => T.rtm.publish('room', t, { customType: 'chat' })), text);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.equal(r.value.channelName, 'room');
  }
  for (const page of [alice, bob]) {
    const got = await eventually('all chat lines on both pages', async () => {
      const m = await run(page, () => T.events.message.filter((e) => e.channelName === 'room'));
      return m.length >= lines.length ? m : null;
    });
    assert.deepEqual(got.map((m) => [m.publisher, m.message]), lines);
    for (const m of got) {
      assert.equal(m.channelType, 'MESSAGE');
      assert.equal(m.topicName, '');
      assert.equal(m.messageType, 'STRING');
      assert.equal(m.customType, 'chat');
      assert.equal(typeof m.timestamp, 'number');
      assert.ok(m.timestamp > 1_600_000_000_000, `server time in ms: ${m.timestamp}`);
    }
  }
  const bin = await run(bob, () => T.attempt(() => T.rtm.publish('room', new Uint8Array([0, 1, 254, 255]))));
  assert.equal(bin.ok, true, JSON.stringify(bin));
  const binMsg = await eventually('alice to get the binary message', () => run(alice, () =>
    T.events.message.find((e) => e.messageType === 'BINARY')));
  assert.deepEqual(binMsg.message, { bytes: [0, 1, 254, 255] });
  assert.equal(binMsg.customType, '');

  const dm = await run(bob, () => T.attempt(() => T.rtm.publish('alice', 'psst', { channelType: 'USER' })));
  assert.equal(dm.ok, true, JSON.stringify(dm));
  const dmMsg = await eventually('alice to get bob\'s USER message', () => run(alice, () =>
    T.events.message.find((e) => e.channelType === 'USER')));
  assert.deepEqual([dmMsg.channelName, dmMsg.publisher, dmMsg.message], ['bob', 'bob', 'psst']);

  // Presence state (§5.3): bob sets a state, alice sees REMOTE_STATE_CHANGED.
  const st = await run(bob, () => T.attempt(() => T.rtm.presence.setState('room', 'MESSAGE', { mood: 'typing' })));
  assert.equal(st.ok, true, JSON.stringify(st));
  const changed = await eventually('alice to see bob\'s state', () => run(alice, () =>
    T.events.presence.find((e) => e.eventType === 'REMOTE_STATE_CHANGED' && e.publisher === 'bob')));
  assert.deepEqual(changed.stateChanged, { mood: 'typing' });

  // Stream channel and topic (§4): both join with RTC tokens, alice publishes in a
  // topic, bob follows her.
  for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
    const rtc = await server.token('rtc', name, 'arena');
    const j = await run(page, (t) => T.attempt(() => T.stream('arena').join({ token: t })), rtc);
    assert.equal(j.ok, true, `join of ${name}: ${JSON.stringify(j)}`);
    const topicSnap = await eventually(`${name}'s topic SNAPSHOT`, () => run(page, () =>
      T.events.topic.find((e) => e.eventType === 'SNAPSHOT' && e.channelName === 'arena')));
    assert.equal(topicSnap.totalTopics, topicSnap.topicInfos.length);
    const streamLink = await run(page, () => T.events.linkState.filter((e) => e.serviceType === 'STREAM')
      .map((e) => [e.currentState, e.operation, e.reasonCode]));
    assert.deepEqual(streamLink.at(-1), ['CONNECTED', 'JOIN', 'JOIN_SUCCESS']);
  }
  const jt = await run(alice, () => T.attempt(() => T.stream('arena').joinTopic('moves', { meta: 'white' })));
  assert.deepEqual([jt.ok, jt.value && jt.value.topicName], [true, 'moves'], JSON.stringify(jt));
  const tj = await eventually('bob to see alice join topic moves', () => run(bob, () =>
    T.events.topic.find((e) => e.eventType === 'REMOTE_JOIN' && e.publisher === 'alice')));
  assert.equal(tj.channelName, 'arena');
  const info = tj.topicInfos.find((t) => t.topicName === 'moves');
  assert.ok(info, JSON.stringify(tj));
  assert.deepEqual(info.publishers.find((p) => p.publisherUserId === 'alice'),
    { publisherUserId: 'alice', publisherMeta: 'white' });

  const follow = await run(bob, () => T.attempt(() => T.stream('arena').subscribeTopic('moves', { users: ['alice'] })));
  assert.equal(follow.ok, true, JSON.stringify(follow));
  assert.deepEqual(follow.value.succeedUsers, ['alice']);
  assert.deepEqual(follow.value.failedUsers, []);
  const listed = await run(bob, () => T.stream('arena').getSubscribedUserList('moves'));
  assert.deepEqual(listed.subscribed, ['alice']);

  for (const move of ['e2e4', 'Nf3', 'Bb5']) {
    const p = await run(alice, (m) => T.attempt(() => T.stream('arena').publishTopicMessage('moves', m, { customType: 'move' })), move);
    assert.equal(p.ok, true, JSON.stringify(p));
    assert.equal(p.value.topicName, 'moves');
  }
  const moves = await eventually('bob to get the three topic messages', async () => {
    const m = await run(bob, () => T.events.message.filter((e) => e.channelType === 'STREAM'));
    return m.length >= 3 ? m : null;
  });
  assert.deepEqual(moves.map((m) => [m.channelName, m.topicName, m.publisher, m.customType, m.message]), [
    ['arena', 'moves', 'alice', 'move', 'e2e4'],
    ['arena', 'moves', 'alice', 'move', 'Nf3'],
    ['arena', 'moves', 'alice', 'move', 'Bb5'],
  ]);
  // R103: the publisher does not follow itself.
  assert.equal((await run(alice, () => T.events.message.filter((e) => e.channelType === 'STREAM'))).length, 0);

  // Let both pages render what they received, then keep the pictures.
  for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
    await eventually(`${name}'s page to render the chat`, () => run(page, () =>
      document.querySelectorAll('#chat li').length >= 4 && document.querySelectorAll('#members li').length === 2));
    await screenshot(page, `chat-${name}.png`);
  }

  // R33: bob logs out; alice sees REMOTE_LEAVE (not REMOTE_TIMEOUT) in the room.
  const out = await run(bob, () => T.attempt(() => T.rtm.logout()));
  assert.equal(out.ok, true, JSON.stringify(out));
  assert.equal(await run(bob, () => T.linkState('MESSAGE')), 'IDLE');
  const leave = await eventually('alice to see bob leave', () => run(alice, () =>
    T.events.presence.find((e) => e.channelName === 'room' && e.publisher === 'bob' &&
      (e.eventType === 'REMOTE_LEAVE' || e.eventType === 'REMOTE_TIMEOUT'))));
  assert.equal(leave.eventType, 'REMOTE_LEAVE');
  await run(alice, () => T.rtm.logout());
  await alice.close();
  await bob.close();
});
