// The generated fast decoder (src/gen/decode.ts, scripts/gen-decode.mjs) gives exactly
// what @bufbuild/protobuf's fromBinary gives for every kind of server message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create, decodeServerMessage, fromBinary, pb, toBinary } from "../../dist/internal.mjs";

const pos = (e, o) => create(pb.StreamPositionSchema, { epoch: e, offset: o });
const samples = [
  { id: 0, body: { case: "message", value: create(pb.MessagePushSchema, { channelType: 3, channelName: "ch", topicName: "t", publisher: "pübl", messageType: 1, customType: "x", payload: new Uint8Array([1, 2, 3]), timestamp: 1765000000123n, position: pos(2n ** 63n + 5n, 300n), sendTs: 7n }) } },
  { id: 7, body: { case: "error", value: create(pb.ErrorSchema, { code: -11033, reason: "r".repeat(200), operation: "publish" }) } },
  { id: 1, body: { case: "login", value: create(pb.LoginReplySchema, { sessionId: "s", resumed: true, heartbeatInterval: 5, presenceTimeout: 300, timestamp: 1n, tokenExpiresAt: 2n, unrestoredChannels: ["a", "b"], gapChannels: ["c"], userPosition: pos(1n, 2n) }) } },
  { id: 0, body: { case: "presence", value: create(pb.PresenceEventSchema, { eventType: 6, channelType: 1, channelName: "c", publisher: "p", stateChanged: { k: "v", é: "ü" }, interval: create(pb.IntervalDetailSchema, { join: ["a"], leave: [], timeout: ["t"], userStateList: [create(pb.UserStateSchema, { userId: "u", states: { a: "b" } })], totalOccupancy: 9 }), snapshot: [create(pb.UserStateSchema, { userId: "x" })], timestamp: 3n, position: pos(1n, 1n) }) } },
  { id: 0, body: { case: "topic", value: create(pb.TopicEventSchema, { eventType: 1, channelName: "s", topics: [create(pb.TopicInfoSchema, { topicName: "t", publishers: [create(pb.TopicPublisherSchema, { userId: "u", meta: "m" })] })], timestamp: 4n }) } },
  { id: 0, body: { case: "storage", value: create(pb.StorageEventSchema, { channelType: 1, channelName: "c", storageType: 2, eventType: 4, data: create(pb.MetadataSchema, { totalCount: 1, majorRevision: -1n, items: [create(pb.MetadataDetailSchema, { key: "k", value: "v", revision: -3n, updated: 5n, authorUid: "a" })] }) }) } },
  { id: 0, body: { case: "lock", value: create(pb.LockEventSchema, { channelType: 2, eventType: 4, lockName: "l", ttl: 10, owner: "o", snapshot: [create(pb.LockDetailSchema, { lockName: "l", owner: "", ttl: 300 })] }) } },
  { id: 9, body: { case: "subscribeTopic", value: create(pb.SubscribeTopicReplySchema, { succeedUsers: ["a"], failed: [create(pb.TopicFailureSchema, { user: "b", errorCode: 20001, reason: "already" }), create(pb.TopicFailureSchema, { errorCode: -11014 })] }) } },
  { id: 0, body: { case: "closing", value: create(pb.ClosingSchema, { code: 4001, reason: "kick", reconnect: false }) } },
  { id: 3, body: { case: "getMessages", value: create(pb.GetMessagesReplySchema, { messages: [create(pb.HistoryMessageSchema, { messageType: 2, payload: new Uint8Array(1000).fill(7), publisher: "p", timestamp: 9n })], newStart: 8n }) } },
  { id: 4, body: { case: "whoNow", value: create(pb.WhoNowReplySchema, {}) } },
  { id: 0, body: { case: undefined } },
];

test("decodeServerMessage equals fromBinary for every sample", () => {
  for (const s of samples) {
    const bin = toBinary(pb.ServerMessageSchema, create(pb.ServerMessageSchema, s));
    assert.deepStrictEqual(decodeServerMessage(bin), fromBinary(pb.ServerMessageSchema, bin), s.body.case ?? "empty");
  }
});

test("unknown fields are skipped and truncated input throws", () => {
  const bin = toBinary(pb.ServerMessageSchema, create(pb.ServerMessageSchema, samples[0]));
  const withUnknown = Uint8Array.from([...bin, 0xf8, 0x3e, 0x01, 0xfa, 0x3e, 0x02, 0x61, 0x62]);
  const ref = fromBinary(pb.ServerMessageSchema, withUnknown);
  assert.equal(ref.$unknown.length, 2);
  delete ref.$unknown; // protobuf-es keeps unknown fields; the fast decoder drops them
  assert.deepStrictEqual(decodeServerMessage(withUnknown), ref);
  assert.throws(() => decodeServerMessage(bin.subarray(0, bin.length - 3)));
});
