// Browser end-to-end token lifecycle (api.md §3.7, §9.8, R38–R43) with short-lived
// tokens (34 s, the server's will-expire lead is 30 s): alice gets the will-expire
// notices for her login token and her stream channel token and renews both; bob and
// carol do not renew. Their expiries are the states the test waits for: bob's session
// ends FAILED / TOKEN_EXPIRED (R42) and carol's stream channel link FAILED /
// TOKEN_EXPIRED while her session goes on (R43). By then alice's first tokens have
// expired too (minted earlier), and she still chats and publishes in the topic.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { eventually, launchBrowser, openPage, startServer, startStatic } from './lib/harness.mjs';

/** @type {import('./lib/harness.mjs').Server} */ let server;
/** @type {Awaited<ReturnType<typeof startStatic>>} */ let web;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {string[]} */ const log = [];
const SHORT = 34;

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

async function member(name, rtmToken, rtcToken) {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  await run(page, ([appId, user, url]) => T.create(appId, user, url), [server.appId, name, server.url]);
  const r = await run(page, (t) => T.attempt(() => T.rtm.login({ token: t })), rtmToken);
  assert.equal(r.ok, true, `login of ${name}: ${JSON.stringify(r)}`);
  const s = await run(page, () => T.attempt(() => T.rtm.subscribe('room')));
  assert.equal(s.ok, true, JSON.stringify(s));
  const j = await run(page, (t) => T.attempt(() => T.stream('arena').join({ token: t })), rtcToken);
  assert.equal(j.ok, true, `join of ${name}: ${JSON.stringify(j)}`);
  return page;
}

test('will-expire notices, renewToken for login and stream channel tokens, and expiry without renewal', { timeout: 120_000 }, async () => {
  // Minted in this order, so alice's short tokens expire no later than bob's and carol's.
  const aliceRtm = await server.token('rtm', 'alice', undefined, SHORT);
  const aliceRtc = await server.token('rtc', 'alice', 'arena', SHORT);
  const bobRtm = await server.token('rtm', 'bob', undefined, SHORT);
  const carolRtm = await server.token('rtm', 'carol', undefined, 3600);
  const carolRtc = await server.token('rtc', 'carol', 'arena', SHORT);
  const alice = await member('alice', aliceRtm, aliceRtc);
  const bob = await member('bob', bobRtm, await server.token('rtc', 'bob', 'arena', 3600));
  const carol = await member('carol', carolRtm, carolRtc);
  const jt = await run(alice, () => T.attempt(() => T.stream('arena').joinTopic('moves')));
  assert.equal(jt.ok, true, JSON.stringify(jt));
  const f = await run(carol, () => T.attempt(() => T.stream('arena').subscribeTopic('moves', { users: ['alice'] })));
  assert.equal(f.ok, true, JSON.stringify(f));

  // R38: the login token's notice has an empty channel name, with a token WILL_EXPIRE.
  const loginNotice = await eventually('alice\'s login token will-expire notice', () => run(alice, () =>
    T.events.tokenPrivilegeWillExpire.find((e) => !e.channelName)), { timeoutMs: 20_000 });
  assert.ok(!loginNotice.channelName);
  const tokenEvent = await eventually('alice\'s token WILL_EXPIRE event', () => run(alice, () =>
    T.events.token.find((e) => e.eventType === 'WILL_EXPIRE')));
  assert.equal(typeof tokenEvent.reason, 'string');
  assert.ok(Array.isArray(tokenEvent.affectedResources.messageChannels));
  const renewLogin = await run(alice, (t) => T.attempt(() => T.rtm.renewToken(t)), await server.token('rtm', 'alice'));
  assert.equal(renewLogin.ok, true, JSON.stringify(renewLogin));
  assert.equal(typeof renewLogin.value.timestamp, 'number');

  // R39: the stream channel token's notice names the channel.
  await eventually('alice\'s stream channel token will-expire notice', () => run(alice, () =>
    T.events.tokenPrivilegeWillExpire.some((e) => e.channelName === 'arena')), { timeoutMs: 20_000 });
  const renewRtc = await run(alice, (t) => T.attempt(() => T.rtm.renewToken(t, { channelName: 'arena' })),
    await server.token('rtc', 'alice', 'arena'));
  assert.equal(renewRtc.ok, true, JSON.stringify(renewRtc));
  // §3.7: renewing the token of a stream channel that is not joined fails with -11001.
  const notJoined = await run(alice, (t) => T.attempt(() => T.rtm.renewToken(t, { channelName: 'elsewhere' })),
    await server.token('rtc', 'alice', 'elsewhere'));
  assert.deepEqual([notJoined.ok, notJoined.errorCode], [false, -11001], JSON.stringify(notJoined));

  // R42: bob did not renew: his session fails with TOKEN_EXPIRED.
  const bobFailed = await eventually('bob\'s session to end with TOKEN_EXPIRED', () => run(bob, () =>
    T.events.linkState.find((e) => e.serviceType === 'MESSAGE' && e.currentState === 'FAILED')), { timeoutMs: 60_000 });
  assert.deepEqual([bobFailed.operation, bobFailed.reasonCode], ['SERVER_REJECT', 'TOKEN_EXPIRED'], JSON.stringify(bobFailed));
  // R43: carol's stream channel token lapsed: only that channel's link fails.
  const carolFailed = await eventually('carol\'s stream channel link to fail with TOKEN_EXPIRED', () => run(carol, () =>
    T.events.linkState.find((e) => e.serviceType === 'STREAM' && e.currentState === 'FAILED')), { timeoutMs: 60_000 });
  assert.equal(carolFailed.reasonCode, 'TOKEN_EXPIRED', JSON.stringify(carolFailed));
  assert.equal(await run(carol, () => T.linkState('MESSAGE')), 'CONNECTED');

  // Alice renewed both, so she is still fully in service after her first tokens' expiry.
  assert.equal(await run(alice, () => T.linkState('MESSAGE')), 'CONNECTED');
  assert.deepEqual(await run(alice, () => T.events.linkState.filter((e) => e.currentState === 'FAILED')), []);
  const chat = await run(alice, () => T.attempt(() => T.rtm.publish('room', 'still here')));
  assert.equal(chat.ok, true, JSON.stringify(chat));
  await eventually('carol to get alice\'s chat after the expiry', () => run(carol, () =>
    T.events.message.some((e) => e.message === 'still here')));
  const move = await run(alice, () => T.attempt(() => T.stream('arena').publishTopicMessage('moves', 'renewed')));
  assert.equal(move.ok, true, JSON.stringify(move));
  for (const page of [alice, bob, carol]) {
    await run(page, () => T.rtm.logout());
    await page.close();
  }
});
