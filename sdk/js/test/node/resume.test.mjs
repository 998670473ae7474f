// §11 and §13.5 across a real faulty link: a TCP proxy between a client and the server
// freezes or cuts the connection; the SDK notices (keep-alive, R18), reconnects with
// backoff (R48, R49), resumes its session within presenceTimeout (R52, R55) and gets
// every channel, USER and topic message exactly once and in order (R58, R72), with a
// fresh topic SNAPSHOT after every reconnect (R60, seed 002).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, client, eventually, fastReconnect, record, setParameter, startServer, uid } from "./harness.mjs";
import { startProxy } from "./proxy.mjs";

let server;
let proxy;
before(async () => {
  server = await startServer();
  proxy = await startProxy(server.addr);
  fastReconnect();
  // 1 s heartbeats: a freeze is noticed after 1.5 s of silence (R18).
  setParameter("HEART_BEAT", 1);
});
after(async () => {
  setParameter("HEART_BEAT", undefined);
  await closeAll();
  await proxy?.stop();
  await server?.stop();
});

test("R47, R49, R52, R55, R58, R60, R72: 10 freezes and cuts within presenceTimeout — every message once, in order", async () => {
  const sender = client(server.url, uid("tx"));
  const rx = client(proxy.url, uid("rx"), { presenceTimeout: 60 });
  const watcher = client(server.url, uid("w"));
  const ev = record(rx);
  const ew = record(watcher);
  await Promise.all([sender.login(), rx.login(), watcher.login()]);
  await rx.subscribe("resume-ch");
  await watcher.subscribe("resume-ch");
  const sc = sender.createStreamChannel("resume-st");
  const rc = rx.createStreamChannel("resume-st");
  await sc.join();
  await sc.joinTopic("t1");
  await rc.join({ withPresence: false });
  await rc.subscribeTopic("t1", { users: [sender.userId] });
  await eventually(() => ev.topic.some((t) => t.eventType === "SNAPSHOT"), { what: "first topic SNAPSHOT" });

  let n = 0;
  let pumping = true;
  const pump = (async () => {
    while (pumping) {
      const i = n++;
      await Promise.all([
        sender.publish("resume-ch", `c${i}`),
        sender.publish(rx.userId, `u${i}`, { channelType: "USER" }),
        sc.publishTopicMessage("t1", `t${i}`),
      ]);
      // Under the 60/s per-channel publish rate (R67).
      await new Promise((r) => setTimeout(r, 25));
    }
  })();

  try {
  for (let round = 0; round < 10; round++) {
    const reconnects = ev.linkState.filter((e) => e.currentState === "CONNECTED" && e.operation === "RECONNECTED").length;
    const before = ev.message.length;
    await eventually(() => ev.message.length > before + 30, { what: "traffic before the fault" });
    const seen = ev.linkState.length;
    if (round % 2 === 0) proxy.freeze();
    else proxy.cut();
    // A cut may be noticed and repaired between two polls: look for the loss itself.
    await eventually(() => ev.linkState.slice(seen).some((e) => e.currentState === "DISCONNECTED"), {
      what: `loss noticed (round ${round})`,
    });
    if (round % 2 === 0) proxy.pass();
    await eventually(
      () => ev.linkState.filter((e) => e.currentState === "CONNECTED" && e.operation === "RECONNECTED").length === reconnects + 1,
      { what: `reconnected (round ${round})`, timeout: 20000 },
    );
  }
  } finally {
    pumping = false;
    await pump;
  }
  const total = n;
  await eventually(() => ev.message.length === 3 * total, { what: `all ${3 * total} messages`, timeout: 20000 });

  const of = (type) => ev.message.filter((m) => m.channelType === type).map((m) => m.message);
  const expect = (p) => Array.from({ length: total }, (_, i) => `${p}${i}`);
  assert.deepEqual(of("MESSAGE"), expect("c"), "channel messages once, in order");
  assert.deepEqual(of("USER"), expect("u"), "USER messages once, in order");
  assert.deepEqual(of("STREAM"), expect("t"), "topic messages once, in order");
  assert.ok(ev.message.filter((m) => m.channelType === "STREAM").every((m) => m.topicName === "t1" && m.channelName === "resume-st"));

  // Link states: each fault is CONNECTED → DISCONNECTED (HEARTBEAT_TIMEOUT) → CONNECTING
  // (AUTO_RECONNECT) → … → CONNECTED (RECONNECTED, resumed).
  const login = ev.linkState.filter((e) => e.serviceType === "MESSAGE");
  const reconnected = login.filter((e) => e.operation === "RECONNECTED");
  assert.equal(reconnected.length, 10);
  for (const e of reconnected) {
    assert.equal(e.reasonCode, "RECONNECT_SUCCESS");
    assert.equal(e.isResumed, true);
    assert.deepEqual(e.unrestoredChannels, []);
    assert.deepEqual(e.affectedChannels, ["resume-ch"]);
  }
  const lost = login.filter((e) => e.currentState === "DISCONNECTED" && e.previousState === "CONNECTED");
  assert.equal(lost.length, 10);
  for (const e of lost) {
    assert.equal(e.operation, "HEARTBEAT_TIMEOUT");
    assert.equal(e.reasonCode, "KEEP_ALIVE_TIMEOUT");
  }
  assert.ok(login.some((e) => e.currentState === "CONNECTING" && e.operation === "AUTO_RECONNECT" && e.reasonCode === "AUTO_RECONNECT"));
  // R60 / seed 002: a topic SNAPSHOT after every reconnect, listing the sender's topic.
  const snaps = ev.topic.filter((t) => t.eventType === "SNAPSHOT");
  assert.equal(snaps.length, 11);
  for (const s of snaps) {
    const t1 = s.topicInfos.find((t) => t.topicName === "t1");
    assert.ok(t1 && t1.publishers.some((p) => p.publisherUserId === sender.userId));
  }
  // R52: others saw nothing: no REMOTE_LEAVE / REMOTE_TIMEOUT of rx.
  assert.ok(!ew.presence.some((p) => p.publisher === rx.userId && p.eventType !== "REMOTE_JOIN"));
  // The stream channel link stayed CONNECTED all along (reconnects are the login link's).
  assert.ok(!ev.linkState.some((e) => e.serviceType === "STREAM" && e.currentState !== "CONNECTING" && e.currentState !== "CONNECTED"));
});

test("R53, R54, R56, R60: away longer than presenceTimeout — a new session, channels restored by the SDK, isResumed false", async () => {
  const sender = client(server.url, uid("tx"));
  const rx = client(proxy.url, uid("rx"), { presenceTimeout: 5 });
  const ev = record(rx);
  const ew = record(sender);
  await Promise.all([sender.login(), rx.login()]);
  await sender.subscribe("late-ch");
  await rx.subscribe("late-ch");
  await sender.publish("late-ch", "before");
  await eventually(() => ev.message.length === 1, { what: "before" });
  proxy.freeze();
  await eventually(() => ew.presence.some((p) => p.eventType === "REMOTE_TIMEOUT" && p.publisher === rx.userId), {
    what: "REMOTE_TIMEOUT of rx (R53)",
    timeout: 20000,
  });
  await sender.publish("late-ch", "while-away");
  proxy.pass();
  await eventually(() => ev.linkState.some((e) => e.operation === "RECONNECTED"), { what: "reconnected", timeout: 20000 });
  const r = ev.linkState.find((e) => e.operation === "RECONNECTED");
  assert.equal(r.isResumed, false);
  assert.deepEqual(r.unrestoredChannels, []);
  await eventually(() => ew.presence.some((p) => p.eventType === "REMOTE_JOIN" && p.publisher === rx.userId), { what: "REMOTE_JOIN (R54)" });
  await eventually(() => ev.message.length === 2, { what: "missed message recovered" });
  // R60: a session that was not resumed gets a fresh presence SNAPSHOT of the channel.
  await eventually(() => ev.presence.filter((p) => p.eventType === "SNAPSHOT" && p.channelName === "late-ch").length === 2, {
    what: "a second presence SNAPSHOT",
  });
  assert.deepEqual(ev.message.map((m) => m.message), ["before", "while-away"]);
  await sender.publish("late-ch", "after");
  await eventually(() => ev.message.length === 3, { what: "after" });
});

test("R51: a network change during a reconnect attempt drops it: DISCONNECTED / NETWORK_CHANGE, retried after 2 s", async () => {
  const rx = client(proxy.url, uid("net"), { presenceTimeout: 60 });
  const ev = record(rx);
  await rx.login();
  proxy.freeze(); // the link is lost, and every new attempt hangs in its handshake
  await eventually(() => ev.linkState.at(-1)?.currentState === "CONNECTING", { what: "a reconnect attempt", timeout: 10000 });
  // The browser's `online` event calls this (Node has no such event).
  rx.networkChanged();
  const nc = await eventually(() => ev.linkState.find((e) => e.reasonCode === "NETWORK_CHANGE"), { what: "NETWORK_CHANGE" });
  assert.deepEqual([nc.previousState, nc.currentState, nc.operation], ["CONNECTING", "DISCONNECTED", "NETWORK_CHANGE"]);
  const at = nc.timestamp;
  const next = await eventually(() => ev.linkState.find((e) => e.timestamp >= at && e.currentState === "CONNECTING" && e.operation === "AUTO_RECONNECT"), {
    what: "the retry",
    timeout: 5000,
  });
  assert.ok(next.timestamp - at >= 1900, `retried ${next.timestamp - at} ms after the network change`);
  proxy.pass();
  await eventually(() => ev.linkState.at(-1)?.currentState === "CONNECTED", { what: "reconnected", timeout: 20000 });
  await rx.logout();
});

test("R59: publish and publishTopicMessage called while the link is down go out after the reconnect, once", async () => {
  const tx = client(proxy.url, uid("ptx"), { presenceTimeout: 60 });
  const rx = client(server.url, uid("prx"));
  const et = record(tx);
  const er = record(rx);
  await Promise.all([tx.login(), rx.login()]);
  await rx.subscribe("pending-ch");
  const st = tx.createStreamChannel("pending-st");
  const sr = rx.createStreamChannel("pending-st");
  await st.join();
  await st.joinTopic("t");
  await sr.join({ withPresence: false });
  await sr.subscribeTopic("t", { users: [tx.userId] });
  proxy.freeze();
  await eventually(() => et.linkState.some((e) => e.currentState === "DISCONNECTED"), { what: "link lost", timeout: 10000 });
  const p1 = tx.publish("pending-ch", "queued");
  const p2 = st.publishTopicMessage("t", "queued-topic");
  proxy.pass();
  await Promise.all([p1, p2]);
  await eventually(() => er.message.length === 2, { what: "both delivered" });
  assert.deepEqual(er.message.map((m) => m.message).sort(), ["queued", "queued-topic"]);
});

test("R59, R58: a topic publish whose reply is lost with a cut connection is resent with its key and delivered exactly once", async () => {
  const tx = client(proxy.url, uid("ktx"), { presenceTimeout: 60 });
  const rx = client(server.url, uid("krx"));
  const et = record(tx);
  const er = record(rx);
  await Promise.all([tx.login(), rx.login()]);
  const st = tx.createStreamChannel("keyed-st");
  const sr = rx.createStreamChannel("keyed-st");
  await st.join({ withPresence: false });
  await st.joinTopic("t");
  await sr.join({ withPresence: false });
  await sr.subscribeTopic("t", { users: [tx.userId] });
  // The request reaches the server, which delivers it; its reply is held, then the
  // connection is cut under it: the SDK cannot know whether it was delivered.
  proxy.holdReplies();
  const sent = st.publishTopicMessage("t", "cut-once");
  await eventually(() => er.message.length === 1, { what: "delivered before the cut" });
  proxy.cut();
  proxy.pass();
  // Without the resend this rejects with -10025; without the key it arrives twice.
  await sent;
  assert.ok(
    et.linkState.some((e) => e.currentState === "CONNECTED" && e.reasonCode === "RECONNECT_SUCCESS"),
    "the publish completed over a new connection",
  );
  await st.publishTopicMessage("t", "after");
  await eventually(() => er.message.some((m) => m.message === "after"), { what: "sentinel" });
  assert.deepEqual(
    er.message.map((m) => m.message),
    ["cut-once", "after"],
  );
  await Promise.all([st.leave(), sr.leave()]);
});

test("R153, R157: an owner away longer than the lock's ttl loses it — RELEASED to subscribers, EXPIRED to the owner on its resume", async () => {
  const owner = client(proxy.url, uid("own"), { presenceTimeout: 60 });
  const watcher = client(server.url, uid("wat"));
  const eo = record(owner);
  const ew = record(watcher);
  await Promise.all([owner.login(), watcher.login()]);
  await watcher.subscribe("lock-ch", { withLock: true, withPresence: false });
  await owner.lock.setLock("lock-ch", "MESSAGE", "L", { ttl: 10 });
  await owner.lock.acquireLock("lock-ch", "MESSAGE", "L");
  await eventually(() => ew.lock.some((l) => l.eventType === "ACQUIRED" && l.owner === owner.userId), { what: "ACQUIRED" });
  proxy.freeze();
  const released = await eventually(() => ew.lock.find((l) => l.eventType === "RELEASED" && l.lockName === "L"), {
    what: "RELEASED after the ttl",
    timeout: 25000,
  });
  assert.equal(released.owner, "");
  proxy.pass();
  const expired = await eventually(() => eo.lock.find((l) => l.eventType === "EXPIRED"), { what: "EXPIRED on resume", timeout: 20000 });
  assert.deepEqual([expired.channelName, expired.channelType, expired.lockName, expired.ttl], ["lock-ch", "MESSAGE", "L", 0]);
  assert.ok(eo.linkState.some((e) => e.operation === "RECONNECTED" && e.isResumed), "the owner resumed its session");
  assert.equal(eo.lock.filter((l) => l.eventType === "EXPIRED").length, 1);
});
