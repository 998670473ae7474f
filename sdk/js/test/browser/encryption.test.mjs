// Browser end-to-end encryption (api.md §2.2, R19, R20): two pages configured with
// AES_256_GCM and the same cipherKey + salt chat in a channel, by USER message and in a
// topic, and read each other's plaintext; the bytes the server sends to the receiver
// (sniffed by the proxy in front of it) never contain the plaintext, while an unencrypted
// presence state of the same sender does show up there (so the sniffer sees plaintext
// when there is some). A third page with the wrong key gets nothing for those payloads,
// never garbage: it gets an `error` event instead.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { FaultProxy, eventually, launchBrowser, openPage, screenshot, startServer, startStatic } from './lib/harness.mjs';

/** @type {import('./lib/harness.mjs').Server} */ let server;
/** @type {Awaited<ReturnType<typeof startStatic>>} */ let web;
/** @type {Awaited<ReturnType<typeof launchBrowser>>} */ let browser;
/** @type {FaultProxy} */ let sniffer;
/** @type {string[]} */ const log = [];

before(async () => {
  server = await startServer();
  web = await startStatic();
  browser = await launchBrowser();
  sniffer = new FaultProxy(server.port);
  await sniffer.listen();
  sniffer.capture = true;
});

after(async () => {
  await browser?.close();
  await sniffer?.close();
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

const salt = Array.from(randomBytes(32));

async function client(name, cipherKey, url) {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  await run(page, ([appId, user, u, key, s]) => T.create(appId, user, u,
    { encryptionMode: 'AES_256_GCM', cipherKey: key, saltBytes: s }),
  [server.appId, name, url, cipherKey, salt]);
  const token = await server.token('rtm', name);
  const r = await run(page, (t) => T.attempt(() => T.rtm.login({ token: t })), token);
  assert.equal(r.ok, true, `login of ${name}: ${JSON.stringify(r)}`);
  const s = await run(page, () => T.attempt(() => T.rtm.subscribe('secret')));
  assert.equal(s.ok, true, JSON.stringify(s));
  const rtc = await server.token('rtc', name, 'vault');
  const j = await run(page, (t) => T.attempt(() => T.stream('vault').join({ token: t })), rtc);
  assert.equal(j.ok, true, JSON.stringify(j));
  return page;
}

test('R19: encryption without a cipherKey, or with a salt over 32 bytes, throws -10020', async () => {
  const page = await openPage(browser.context, `${web.origin}/`, log);
  const codes = await run(page, (appId) => {
    const code = (cfg) => {
      try {
        new AgoraRTM.RTM(appId, 'dave', cfg);
        return 0;
      } catch (e) {
        return e.errorCode;
      }
    };
    return [
      code({ encryptionMode: 'AES_256_GCM', salt: new Uint8Array(32) }),
      code({ encryptionMode: 'AES_128_GCM', cipherKey: 'k', salt: new Uint8Array(33) }),
    ];
  }, server.appId);
  assert.deepEqual(codes, [-10020, -10020]);
  await page.close();
});

test('AES_256_GCM chat between two pages: plaintext for the key holders, ciphertext on the wire', async () => {
  const key = `key-${randomBytes(8).toString('hex')}`;
  const alice = await client('alice', key, server.url);
  const bob = await client('bob', key, sniffer.port ? `ws://127.0.0.1:${sniffer.port}` : '');
  const carol = await client('carol', 'not the key', server.url);

  const follow = await run(bob, () => T.attempt(() => T.stream('vault').subscribeTopic('notes', { users: ['alice'] })));
  assert.equal(follow.ok, true, JSON.stringify(follow));
  await run(carol, () => T.stream('vault').subscribeTopic('notes', { users: ['alice'] }));
  const jt = await run(alice, () => T.attempt(() => T.stream('vault').joinTopic('notes')));
  assert.equal(jt.ok, true, JSON.stringify(jt));
  await eventually('bob and carol to see alice in the room', async () => {
    for (const page of [bob, carol]) {
      const seen = await run(page, () => T.events.presence.some((e) => e.channelName === 'secret' &&
        (e.publisher === 'alice' || (e.snapshot || []).some((u) => u.userId === 'alice'))));
      if (!seen) return false;
    }
    return true;
  });

  const secret = 'attack at dawn, bring the owls';
  const dm = 'only bob may read this';
  const note = 'topic secret 42';
  const r1 = await run(alice, (t) => T.attempt(() => T.rtm.publish('secret', t)), secret);
  assert.equal(r1.ok, true, JSON.stringify(r1));
  const r2 = await run(alice, (t) => T.attempt(() => T.rtm.publish('bob', t, { channelType: 'USER' })), dm);
  assert.equal(r2.ok, true, JSON.stringify(r2));
  const r3 = await run(alice, (t) => T.attempt(() => T.stream('vault').publishTopicMessage('notes', t)), note);
  assert.equal(r3.ok, true, JSON.stringify(r3));
  // An unencrypted marker after the messages: presence state travels in the clear.
  const marker = `marker-${randomBytes(6).toString('hex')}`;
  const r4 = await run(alice, (m) => T.attempt(() => T.rtm.presence.setState('secret', 'MESSAGE', { marker: m })), marker);
  assert.equal(r4.ok, true, JSON.stringify(r4));

  const got = await eventually('bob to read all three', async () => {
    const m = await run(bob, () => T.events.message.filter((e) => e.publisher === 'alice'));
    return m.length >= 3 ? m : null;
  });
  assert.deepEqual(got.map((m) => [m.channelType, m.messageType, m.message]), [
    ['MESSAGE', 'STRING', secret],
    ['USER', 'STRING', dm],
    ['STREAM', 'STRING', note],
  ]);
  await eventually('bob to see the marker state', () => run(bob, (m) => T.events.presence.some((e) =>
    e.eventType === 'REMOTE_STATE_CHANGED' && e.stateChanged.marker === m), marker));

  // R20: what the server sent bob holds the marker but none of the plaintexts.
  const wire = Buffer.concat(sniffer.downstream);
  assert.ok(wire.includes(marker), 'the sniffer sees unencrypted data (control)');
  for (const t of [secret, dm, note]) {
    assert.ok(!wire.includes(t), `plaintext ${JSON.stringify(t)} crossed the wire`);
  }

  // The wrong key: carol got the marker (so the messages were delivered to her
  // connection before it) but no message event for any of alice's payloads.
  await eventually('carol to see the marker state', () => run(carol, (m) => T.events.presence.some((e) =>
    e.eventType === 'REMOTE_STATE_CHANGED' && e.stateChanged.marker === m), marker));
  const carolGot = await run(carol, () => T.events.message.filter((e) => e.publisher === 'alice'));
  assert.deepEqual(carolGot, [], 'a payload that does not decrypt is never delivered');
  // ... and is reported: an `error` event per payload, naming channel and publisher.
  const carolErrors = await eventually('carol to be told of both undecryptable payloads', async () => {
    const e = await run(carol, () => T.events.error.filter((x) => x.publisher === 'alice'));
    return e.length >= 2 ? e : null;
  });
  assert.deepEqual(carolErrors.map((e) => [e.channelType, e.channelName, e.topicName, e.error.errorCode]), [
    ['MESSAGE', 'secret', '', -11023],
    ['STREAM', 'vault', 'notes', -11023],
  ]);
  assert.deepEqual(await run(bob, () => T.events.error), [], 'bob decrypted everything');

  await eventually('bob\'s page to render', () => run(bob, () => document.querySelectorAll('#chat li').length >= 2));
  await screenshot(bob, 'encrypted-bob.png');
  for (const page of [alice, bob, carol]) {
    await run(page, () => T.rtm.logout());
    await page.close();
  }
});
