// §4 stream channels and topics, §9.4 topic events, stream channel links and tokens.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { APP_ID, client, eventually, record, rejectsWith, rtcToken, rtmToken, startServer, uid } from "./harness.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("R88, R90–R92, R97, R100, R103, R168: join, topics, follow publishers, topic events and messages", async () => {
  const a = client(server.url, uid("a"));
  const b = client(server.url, uid("b"));
  const ea = record(a);
  const eb = record(b);
  await Promise.all([a.login(), b.login()]);
  const ca = a.createStreamChannel("st1");
  assert.equal(a.createStreamChannel("st1"), ca, "R88: same object for the same name");
  const cb = b.createStreamChannel("st1");
  const j = await ca.join();
  assert.equal(j.channelName, "st1");
  assert.equal(typeof j.timestamp, "number");
  const links = ea.linkState.filter((e) => e.serviceType === "STREAM").map((e) => [e.currentState, e.operation, e.reasonCode, e.affectedChannels.join()]);
  assert.deepEqual(links, [
    ["CONNECTING", "JOIN", "JOIN", "st1"],
    ["CONNECTED", "JOIN", "JOIN_SUCCESS", "st1"],
  ]);
  await ca.joinTopic("moves", { meta: "pawn" });
  await cb.join();
  // R92: the joiner's topic SNAPSHOT lists every topic with its publishers and meta, and
  // it was emitted before `join` resolved (read at once, not polled for).
  const snap = eb.topic.find((t) => t.eventType === "SNAPSHOT");
  assert.ok(snap, "the topic SNAPSHOT came before join resolved");
  assert.equal(snap.channelName, "st1");
  assert.equal(snap.publisher, "");
  assert.equal(snap.totalTopics, snap.topicInfos.length);
  const moves = snap.topicInfos.find((t) => t.topicName === "moves");
  assert.deepEqual(moves.publishers, [{ publisherUserId: a.userId, publisherMeta: "pawn" }]);
  assert.equal(moves.totalPublisher, 1);
  await eventually(() => ea.presence.some((p) => p.eventType === "REMOTE_JOIN" && p.publisher === b.userId && p.channelType === "STREAM"), {
    what: "presence REMOTE_JOIN in the stream channel",
  });
  // R100: REMOTE_JOIN for a topic publisher, with its meta.
  await cb.joinTopic("chat", { meta: "m2" });
  const tj = await eventually(() => ea.topic.find((t) => t.eventType === "REMOTE_JOIN"), { what: "topic REMOTE_JOIN" });
  assert.equal(tj.publisher, b.userId);
  assert.deepEqual(tj.topicInfos[0].publishers, [{ publisherUserId: b.userId, publisherMeta: "m2" }]);
  // R103, R109: follow a publisher (and a not-yet publisher); only followers get messages.
  const s = await cb.subscribeTopic("moves", { users: [a.userId, "later-user"] });
  assert.deepEqual(s.succeedUsers.sort(), [a.userId, "later-user"].sort());
  assert.deepEqual(s.failedUsers, []);
  assert.equal(s.topicName, "moves");
  assert.deepEqual(cb.getSubscribedUserList("moves").subscribed.sort(), [a.userId, "later-user"].sort());
  const again = await cb.subscribeTopic("moves", { users: [a.userId] });
  assert.deepEqual(again.failedUsers, [a.userId]);
  assert.equal(again.failedDetails[0].errorCode, 20001, "R110: ALREADY_SUBSCRIBED_USER");
  const p = await ca.publishTopicMessage("moves", "e2e4", { customType: "move" });
  assert.equal(p.topicName, "moves");
  await ca.publishTopicMessage("moves", new Uint8Array([9]));
  await eventually(() => eb.message.length === 2, { what: "topic messages" });
  const m = eb.message[0];
  assert.equal(m.channelType, "STREAM");
  assert.equal(m.channelName, "st1");
  assert.equal(m.topicName, "moves");
  assert.equal(m.message, "e2e4");
  assert.equal(m.customType, "move");
  assert.equal(m.publisher, a.userId);
  assert.ok(!("publishTime" in m), "R169");
  assert.equal(eb.message[1].messageType, "BINARY");
  assert.equal(ea.message.length, 0, "the publisher does not follow itself");
  // R112: unsubscribe stops delivery.
  await cb.unsubscribeTopic("moves");
  assert.deepEqual(cb.getSubscribedUserList("moves").subscribed, []);
  await rejectsWith(cb.unsubscribeTopic("moves"), -11013);
  // R101, R100: leaveTopic → REMOTE_LEAVE; R94: leave → presence REMOTE_LEAVE.
  await ca.leaveTopic("moves");
  await eventually(() => eb.topic.some((t) => t.eventType === "REMOTE_LEAVE" && t.publisher === a.userId), { what: "topic REMOTE_LEAVE" });
  await rejectsWith(ca.publishTopicMessage("moves", "x"), -11016);
  const l = await cb.leave();
  assert.equal(l.channelName, "st1");
  await eventually(() => ea.presence.some((p) => p.eventType === "REMOTE_LEAVE" && p.publisher === b.userId), { what: "presence REMOTE_LEAVE" });
  const last = eb.linkState.filter((e) => e.serviceType === "STREAM").at(-1);
  assert.deepEqual([last.currentState, last.operation, last.reasonCode], ["IDLE", "LEAVE", "LEAVE"]);
  await Promise.all([a.logout(), b.logout()]);
});

test("R96, R98, R91, R9: topic limits and checks", async () => {
  const a = client(server.url, uid("a"));
  await a.login();
  const ch = a.createStreamChannel("st2");
  await rejectsWith(ch.joinTopic("t"), -11001);
  await rejectsWith(ch.subscribeTopic("t"), -11001);
  await rejectsWith(ch.leave(), -11001);
  const p = ch.join();
  await rejectsWith(ch.join(), -10017);
  await p;
  await ch.join(); // R91: joined already → resolves without change
  await rejectsWith(ch.joinTopic("x".repeat(17)), -11008);
  for (let i = 0; i < 8; i++) await ch.joinTopic(`t${i}`);
  await ch.joinTopic("t0"); // R99
  await rejectsWith(ch.joinTopic("t8"), -11014);
  await rejectsWith(ch.subscribeTopic("empty-topic"), -11017);
  assert.throws(() => a.createStreamChannel("_bad"), (e) => e.errorCode === -10008);
  await a.logout();
  // R35: after logout the channel's link is IDLE (LOGOUT) and its roles are gone.
  assert.equal(ch.link, "IDLE");
});

test("R36, R39, R40, R45: RTC tokens for join; will-expire names the channel; renewToken({channelName})", async () => {
  const u = uid("tok");
  const c = client(server.url, u, {}, APP_ID);
  const ev = record(c);
  await c.login({ token: rtmToken(u) });
  const ch = c.createStreamChannel("secure");
  await rejectsWith(ch.join({ token: rtcToken("other-channel", u) }), -10005);
  const failed = ev.linkState.filter((e) => e.serviceType === "STREAM").at(-1);
  assert.deepEqual([failed.currentState, failed.reasonCode], ["FAILED", "INVALID_TOKEN"]);
  await ch.join({ token: rtcToken("secure", u, 20) });
  const rejoin = ev.linkState.filter((e) => e.serviceType === "STREAM" && e.currentState === "CONNECTING").at(-1);
  assert.equal(rejoin.reasonCode, "REJOIN");
  await eventually(() => ev.tokenPrivilegeWillExpire.includes("secure"), { what: "channel will-expire", timeout: 5000 });
  assert.ok(ev.token.some((t) => t.affectedResources.messageChannels.includes("secure")));
  await c.renewToken(rtcToken("secure", u, 3600), { channelName: "secure" });
  await rejectsWith(c.renewToken(rtcToken("secure", "someone"), { channelName: "secure" }), -10005);
  await c.logout();
});
