// §2, §3 and §9.2 against the real server: constructor checks, login/logout, link
// states, publish to channels and users, subscribe options, listener isolation.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { APP_ID, AgoraRTM, client, eventually, record, rejectsWith, rtmToken, startServer, uid } from "./harness.mjs";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

describe("constructor and RTMConfig (§2.1–§2.3)", () => {
  test("R1, R6, R13, R19, R21: invalid input throws RTMBaseError with the spec's code", () => {
    const { RTM, RTMBaseError } = AgoraRTM;
    const code = (f) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof RTMBaseError);
        assert.equal(e.error, true);
        return e.errorCode;
      }
      return 0;
    };
    assert.equal(code(() => new RTM("short", "u")), -10003);
    assert.equal(code(() => new RTM(APP_ID, "_reserved")), -10006);
    assert.equal(code(() => new RTM(APP_ID, "null")), -10006);
    assert.equal(code(() => new RTM(APP_ID, "x".repeat(65))), -10006);
    assert.equal(code(() => new RTM(APP_ID, "a/b")), -10006);
    assert.equal(code(() => new RTM(APP_ID, "12a", { useStringUserId: false })), -10006);
    assert.equal(code(() => new RTM(APP_ID, "123", { useStringUserId: false })), 0);
    assert.equal(code(() => new RTM(APP_ID, "e1", { encryptionMode: "AES_128_GCM" })), -10020);
    assert.equal(code(() => new RTM(APP_ID, "e2", { encryptionMode: "AES_256_GCM", cipherKey: "k", salt: new Uint8Array(33) })), -10020);
    assert.equal(code(() => new RTM(APP_ID, "p1", { privateConfig: { serviceType: ["MESSAGE"] } })), -10024);
    assert.equal(code(() => new RTM(APP_ID, "p2", { privateConfig: { accessPointHosts: ["h"] } })), -10024);
  });

  test("§2.1: the initial link state is IDLE and the sub-objects exist", () => {
    const c = client(server.url, uid());
    assert.ok(c.presence && c.storage && c.lock && c.history);
    assert.equal(typeof c.createStreamChannel, "function");
  });

  test("R23: cloudProxy (a setting of Agora's cloud) is accepted; MESSAGE and USER messages flow as without it, stream channels are made as without it", async () => {
    const [ida, idb] = [uid(), uid()];
    const a = client(server.url, ida, { cloudProxy: true });
    const b = client(server.url, idb, { cloudProxy: true });
    const ev = record(b);
    await a.login();
    await b.login();
    await b.subscribe("r23-room");
    await a.publish("r23-room", "to the channel");
    await a.publish(idb, "to the user", { channelType: "USER" });
    await eventually(() => ev.message.some((m) => m.message === "to the channel" && m.channelType === "MESSAGE"));
    await eventually(() => ev.message.some((m) => m.message === "to the user" && m.channelType === "USER"));
    assert.equal(typeof b.createStreamChannel("r23-stream").join, "function");
  });

  test("R22: without STREAM in serviceType createStreamChannel throws -10022", () => {
    const c = client(server.url, uid(), { privateConfig: { serviceType: ["MESSAGE"] } });
    assert.throws(() => c.createStreamChannel("s1"), (e) => e.errorCode === -10022);
  });
});

describe("login and logout (§3.1, §3.2, §11)", () => {
  test("R24, R32: link IDLE → CONNECTING → CONNECTED → IDLE with the spec's operations and reasons", async () => {
    const c = client(server.url, uid());
    const ev = record(c);
    await rejectsWith(c.publish("ch", "x"), -10002);
    const r = await c.login();
    assert.equal(typeof r.timestamp, "number");
    assert.ok(r.timestamp > 1.6e12);
    await c.subscribe("c-login");
    await c.logout();
    const seq = ev.linkState.map((e) => [e.previousState, e.currentState, e.operation, e.reasonCode, e.serviceType]);
    assert.deepEqual(seq, [
      ["IDLE", "CONNECTING", "LOGIN", "LOGIN", "MESSAGE"],
      ["CONNECTING", "CONNECTED", "LOGIN", "LOGIN_SUCCESS", "MESSAGE"],
      ["CONNECTED", "IDLE", "LOGOUT", "LOGOUT", "MESSAGE"],
    ]);
    assert.deepEqual(ev.linkState[2].affectedChannels, ["c-login"]);
    for (const e of ev.linkState) {
      assert.equal(typeof e.reason, "string");
      assert.equal(typeof e.timestamp, "number");
      assert.equal(e.isResumed, false);
      assert.deepEqual(e.unrestoredChannels, []);
    }
    // Logging out again resolves at once.
    await c.logout();
  });

  test("R25, R26, R30: tokens — a certificate app refuses bad tokens with the codes of token.md", async () => {
    const u = uid();
    const c = client(server.url, u, {}, APP_ID);
    const ev = record(c);
    await rejectsWith(c.login({ token: "garbage" }), -10005);
    await rejectsWith(c.login({ token: rtmToken("someone-else") }), -10005);
    assert.equal(ev.linkState.at(-1).currentState, "FAILED");
    assert.equal(ev.linkState.at(-1).reasonCode, "INVALID_TOKEN");
    await rejectsWith(c.login({ token: "006" + "ffeeddccbbaa99887766554433221100" + "xyz" }), -10016);
    const p = c.login({ token: rtmToken(u) });
    await rejectsWith(c.login({ token: rtmToken(u) }), -10017);
    await p;
    assert.equal(ev.linkState.at(-1).currentState, "CONNECTED");
    await c.logout();
  });

  test("R34: logout during login cancels it with -10023", async () => {
    const c = client(server.url, uid());
    const p = c.login();
    await c.logout();
    await rejectsWith(p, -10023);
  });

  test("R28: a second login of the same user kicks the first: FAILED / SAME_UID_LOGIN, no reconnect", async () => {
    AgoraRTM.setParameter("ALLOW_DUPLICATE_USER_ID", true);
    const u = uid();
    const a = client(server.url, u);
    const ev = record(a);
    await a.login();
    const b = client(server.url, u);
    await b.login();
    await eventually(() => ev.linkState.at(-1)?.currentState === "FAILED", { what: "FAILED" });
    const last = ev.linkState.at(-1);
    assert.equal(last.operation, "SERVER_REJECT");
    assert.equal(last.reasonCode, "SAME_UID_LOGIN");
    await rejectsWith(a.publish("x", "y"), -10002);
    await b.logout();
    AgoraRTM.setParameter("ALLOW_DUPLICATE_USER_ID", false);
  });

  test("R14: a second live client with the same app id and user id throws -10027", async () => {
    const u = uid();
    const a = client(server.url, u);
    await a.login();
    assert.throws(() => client(server.url, u), (e) => e.errorCode === -10027);
    await a.logout();
    client(server.url, u);
  });
});

describe("publish and subscribe (§3.3–§3.5, §9.2)", () => {
  test("R65, R69, R72, R168, R169: channel messages reach subscribers in order with every field", async () => {
    const a = client(server.url, uid("a"));
    const b = client(server.url, uid("b"));
    const ev = record(b);
    await a.login();
    await b.login();
    const s = await b.subscribe("room1");
    assert.equal(s.channelName, "room1");
    assert.equal(typeof s.timestamp, "number");
    const r = await a.publish("room1", "hello", { customType: "greet" });
    assert.equal(r.channelName, "room1");
    await a.publish("room1", new Uint8Array([1, 2, 3]));
    for (let i = 0; i < 20; i++) await a.publish("room1", `n${i}`);
    await eventually(() => ev.message.length === 22, { what: "22 messages" });
    const [m0, m1] = ev.message;
    assert.deepEqual(Object.keys(m0).sort(), ["channelName", "channelType", "customType", "message", "messageType", "publisher", "timestamp", "topicName"].sort());
    assert.equal(m0.channelType, "MESSAGE");
    assert.equal(m0.channelName, "room1");
    assert.equal(m0.topicName, "");
    assert.equal(m0.messageType, "STRING");
    assert.equal(m0.message, "hello");
    assert.equal(m0.customType, "greet");
    assert.equal(m0.publisher, a.userId);
    assert.ok(m0.timestamp > 1.6e12);
    assert.equal(m1.messageType, "BINARY");
    assert.ok(m1.message instanceof Uint8Array);
    assert.deepEqual([...m1.message], [1, 2, 3]);
    assert.equal(m1.customType, "");
    assert.deepEqual(ev.message.slice(2).map((m) => m.message), Array.from({ length: 20 }, (_, i) => `n${i}`));
    await a.logout();
    await b.logout();
  });

  test("R63, R64, R66, R75, R8: client-side checks of publish", async () => {
    const a = client(server.url, uid());
    await a.login();
    await rejectsWith(a.publish("c", "x".repeat(32 * 1024 + 1)), -11010);
    await a.publish("c", "x".repeat(32 * 1024));
    // 40 maximal publishes in one tick are split over frames under the server's limit.
    await Promise.all(Array.from({ length: 40 }, () => a.publish("big", "x".repeat(32 * 1024))));
    await rejectsWith(a.publish("c", 42), -11009);
    await rejectsWith(a.publish("c", "x", { customType: "" }), -11030);
    await rejectsWith(a.publish("c", "x", { customType: "y".repeat(33) }), -11029);
    await rejectsWith(a.publish("c", "x", { channelType: "STREAM" }), -10019);
    await rejectsWith(a.publish("_bad", "x"), -10008);
    await a.logout();
  });

  test("R71, §15 #26: USER messages reach only the target, channelName = the publisher; offline target → -11033", async () => {
    const a = client(server.url, uid("a"));
    const b = client(server.url, uid("b"));
    const c = client(server.url, uid("c"));
    const eb = record(b);
    const ec = record(c);
    await Promise.all([a.login(), b.login(), c.login()]);
    const r = await a.publish(b.userId, "psst", { channelType: "USER" });
    assert.equal(r.channelName, b.userId);
    await eventually(() => eb.message.length === 1, { what: "USER message" });
    assert.equal(eb.message[0].channelType, "USER");
    assert.equal(eb.message[0].channelName, a.userId);
    assert.equal(eb.message[0].publisher, a.userId);
    assert.equal(eb.message[0].message, "psst");
    await rejectsWith(a.publish(uid("nobody"), "x", { channelType: "USER" }), -11033);
    await a.publish(b.userId, "again", { channelType: "USER" });
    await eventually(() => eb.message.length === 2, { what: "second USER message" });
    assert.equal(ec.message.length, 0);
    await Promise.all([a.logout(), b.logout(), c.logout()]);
  });

  test("R70, R81, R82, R83: withMessage false, re-subscribe replaces options, unsubscribe stops, unsubscribe twice -11002", async () => {
    const a = client(server.url, uid("a"));
    const b = client(server.url, uid("b"));
    const eb = record(b);
    await a.login();
    await b.login();
    await b.subscribe("quietroom", { withMessage: false });
    await a.publish("quietroom", "m1");
    await b.subscribe("quietroom", { withMessage: true });
    await a.publish("quietroom", "m2");
    await eventually(() => eb.message.length >= 1, { what: "m2" });
    assert.deepEqual(eb.message.map((m) => m.message), ["m2"]);
    await b.unsubscribe("quietroom");
    await a.publish("quietroom", "m3");
    // A marker on another channel proves delivery went on; m3 never came.
    await b.subscribe("marker");
    await a.publish("marker", "mk");
    await eventually(() => eb.message.some((m) => m.message === "mk"), { what: "marker" });
    assert.deepEqual(eb.message.map((m) => m.message), ["m2", "mk"]);
    await rejectsWith(b.unsubscribe("quietroom"), -11002);
    await a.logout();
    await b.logout();
  });

  test("§3.8: listeners run in order, a throwing listener breaks nothing, removal needs the reference", async () => {
    const a = client(server.url, uid("a"));
    const b = client(server.url, uid("b"));
    const seen = [];
    const first = () => {
      seen.push("first");
      throw new Error("app bug");
    };
    const second = (m) => seen.push(`second:${m.message}`);
    b.addEventListener("message", first);
    b.addEventListener("message", second);
    await a.login();
    await b.login();
    await b.subscribe("listen");
    await a.publish("listen", "one");
    await eventually(() => seen.length === 2, { what: "both listeners" });
    b.removeEventListener("message", first);
    await a.publish("listen", "two");
    await eventually(() => seen.length === 3, { what: "second listener only" });
    assert.deepEqual(seen, ["first", "second:one", "second:two"]);
    await a.logout();
    await b.logout();
  });

  test("R40, R41: renewToken of the login token; a bad token fails and leaves the old one", async () => {
    const u = uid();
    const c = client(server.url, u, {}, APP_ID);
    await c.login({ token: rtmToken(u) });
    const r = await c.renewToken(rtmToken(u, 7200));
    assert.equal(typeof r.timestamp, "number");
    await rejectsWith(c.renewToken(rtmToken("other")), -10005);
    await c.publish("still", "works");
    await rejectsWith(c.renewToken("x", { channelName: "notjoined" }), -11001);
    await c.logout();
  });

  test("R38: tokenPrivilegeWillExpire('') and token WILL_EXPIRE before the login token expires", async () => {
    const u = uid();
    const c = client(server.url, u, {}, APP_ID);
    const ev = record(c);
    await c.login({ token: rtmToken(u, 20) });
    await eventually(() => ev.tokenPrivilegeWillExpire.length === 1, { what: "will-expire", timeout: 5000 });
    assert.equal(ev.tokenPrivilegeWillExpire[0], "");
    assert.equal(ev.token[0].eventType, "WILL_EXPIRE");
    assert.deepEqual(ev.token[0].affectedResources, { messageChannels: [] });
    await c.logout();
  });

  test("R42, §9.8: a login token that expires unrenewed ends the session: FAILED / SERVER_REJECT / TOKEN_EXPIRED and a token event", async () => {
    const u = uid();
    const c = client(server.url, u, {}, APP_ID);
    const ev = record(c);
    await c.login({ token: rtmToken(u, 3) });
    await eventually(() => ev.linkState.at(-1)?.currentState === "FAILED", { what: "FAILED", timeout: 10000 });
    const last = ev.linkState.at(-1);
    assert.deepEqual([last.previousState, last.operation, last.reasonCode], ["CONNECTED", "SERVER_REJECT", "TOKEN_EXPIRED"]);
    assert.ok(ev.token.length >= 2, "the will-expire notice, then the expiry's token event");
    await rejectsWith(c.publish("x", "y"), -10002);
    // R42: a new login with a fresh token restores service.
    await c.login({ token: rtmToken(u) });
    await c.logout();
  });
});
