// Framing, names, token pre-checks, endpoints and the emitter, without a server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import {
  EventBase,
  byteLength,
  checkChannelName,
  checkCustomType,
  checkTopicName,
  checkUserId,
  encodeFrame,
  endpointUrl,
  payloadOf,
  precheckToken,
  splitFrame,
  loginFailureReason,
} from "../../dist/internal.mjs";

const APP = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

test("docs/protocol.md framing: varint-length-delimited messages, several per frame; malformed frames throw", () => {
  const frame = encodeFrame([{ $typeName: "switchboard.v1.ClientMessage", id: 1, body: { case: undefined } }, { $typeName: "switchboard.v1.ClientMessage", id: 300, body: { case: undefined } }]);
  const parts = splitFrame(frame);
  assert.equal(parts.length, 2);
  assert.deepEqual([...parts[0]], [0x08, 0x01]);
  assert.deepEqual([...parts[1]], [0x08, 0xac, 0x02]);
  assert.throws(() => splitFrame(Uint8Array.from([5, 1])));
  assert.throws(() => splitFrame(Uint8Array.from([0x80])));
  const big = new Uint8Array(200);
  assert.equal(splitFrame(Uint8Array.from([0xc8, 0x01, ...big]))[0].length, 200);
});

test("R2–R9, R66: names and customType", () => {
  assert.equal(checkUserId("alice", "op"), undefined);
  assert.equal(checkUserId("a.b c!#", "op"), undefined);
  assert.equal(checkUserId("", "op").errorCode, -10006);
  assert.equal(checkUserId("null", "op").errorCode, -10006);
  assert.equal(checkUserId("_x", "op").errorCode, -10006);
  assert.equal(checkUserId(12, "op").errorCode, -10006);
  assert.equal(checkUserId("é", "op").errorCode, -10006);
  assert.equal(checkUserId("x".repeat(64), "op"), undefined);
  assert.equal(checkUserId("7", "op", true), undefined);
  assert.equal(checkUserId("07", "op", true).errorCode, -10006);
  assert.equal(checkChannelName("x".repeat(65), "op").errorCode, -10008);
  assert.equal(checkTopicName("x".repeat(17), "op").errorCode, -11008);
  assert.equal(checkTopicName("x".repeat(16), "op"), undefined);
  assert.equal(checkCustomType(undefined, "op"), undefined);
  assert.equal(checkCustomType("", "op").errorCode, -11030);
  assert.equal(checkCustomType("é".repeat(17), "op").errorCode, -11029);
  assert.equal(byteLength("é😀a"), 2 + 4 + 1);
});

test("R63–R65: payloads", () => {
  assert.equal(payloadOf("x".repeat(32768), "p").binary, false);
  assert.equal(payloadOf("é".repeat(16385), "p").errorCode, -11010);
  assert.equal(payloadOf(new Uint8Array(3), "p").binary, true);
  assert.equal(payloadOf({}, "p").errorCode, -11009);
});

test("T61–T63: token pre-checks", async () => {
  assert.equal(await precheckToken("", APP, "login"), APP);
  assert.equal(await precheckToken(undefined, APP, "login"), APP);
  assert.equal(await precheckToken(APP, APP, "login"), APP);
  assert.equal((await precheckToken("nonsense", APP, "login")).errorCode, -10005);
  assert.equal((await precheckToken("006" + "f".repeat(32) + "rest", APP, "login")).errorCode, -10016);
  assert.equal(await precheckToken("006" + APP + "rest", APP, "login"), "006" + APP + "rest");
  assert.equal((await precheckToken("006" + "-".repeat(32), APP, "login")).errorCode, -10005);
  // A 007 token: base64(zlib(len-prefixed signature, len-prefixed app id, ...)).
  const u16 = (n) => [n & 0xff, n >> 8];
  const body = Uint8Array.from([...u16(32), ...new Array(32).fill(9), ...u16(32), ...Buffer.from(APP), 0, 0, 0, 0]);
  const t = "007" + deflateSync(body).toString("base64");
  assert.equal(await precheckToken(t, APP, "login"), t);
  assert.equal((await precheckToken(t, "b".repeat(32), "login")).errorCode, -10016);
  assert.equal((await precheckToken("007@@@", APP, "login")).errorCode, -10005);
});

test("README: access point entries — host[:port] means wss://…/v1/ws; ws:// and wss:// URLs as given", () => {
  assert.equal(endpointUrl("rtm.example.com"), "wss://rtm.example.com/v1/ws");
  assert.equal(endpointUrl("rtm.example.com:8443"), "wss://rtm.example.com:8443/v1/ws");
  assert.equal(endpointUrl("ws://127.0.0.1:7400"), "ws://127.0.0.1:7400/v1/ws");
  assert.equal(endpointUrl("wss://h/custom/path"), "wss://h/custom/path");
});

test("§3.8 emitter: order, duplicates, removal by reference, once, a throwing listener is isolated", () => {
  const e = new EventBase();
  const seen = [];
  const errors = [];
  e.onListenerError = (n, err) => errors.push([n, err.message]);
  const f = (x) => seen.push(`f${x}`);
  e.addEventListener("a", f);
  e.addEventListener("a", f);
  e.addEventListener("a", () => {
    throw new Error("boom");
  });
  e.once("a", (x) => seen.push(`once${x}`));
  e.emit("a", 1);
  e.removeEventListener("a", f);
  e.emit("a", 2);
  assert.deepEqual(seen, ["f1", "f1", "once1", "f2"]);
  assert.deepEqual(errors, [["a", "boom"], ["a", "boom"]]);
  e.removeAllListeners();
  assert.equal(e.emit("a", 3), false);
});

test("§11: login refusal reasons are the Rust SDK's", () => {
  assert.equal(loginFailureReason(-10005), "INVALID_TOKEN");
  assert.equal(loginFailureReason(-10009), "TOKEN_EXPIRED");
  assert.equal(loginFailureReason(-10016), "INCONSISTENT_APP_ID");
  assert.equal(loginFailureReason(-19008), "SAME_UID_LOGIN");
  assert.equal(loginFailureReason(-12345), "LOGIN_REJECTED");
});
