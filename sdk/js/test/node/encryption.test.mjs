// §2.2 end-to-end encryption between two TS clients through the real server: channel,
// USER and topic messages and history decrypt at the receiver; the bytes the server
// relays (read through a proxy in front of the receiver) are not the plaintext (R20);
// a receiver with another key gets no message, only an `error` event.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, client, eventually, record, startServer, uid } from "./harness.mjs";
import { startProxy } from "./proxy.mjs";

let server;
let proxy;
before(async () => {
  server = await startServer();
  proxy = await startProxy(server.addr);
});
after(async () => {
  await closeAll();
  await proxy?.stop();
  await server?.stop();
});

const salt = new TextEncoder().encode("switchboard-salt");
const enc = (mode, key = "correct horse battery staple") => ({ encryptionMode: mode, cipherKey: key, salt });

for (const mode of ["AES_128_GCM", "AES_256_GCM"]) {
  test(`R20, §2.2 ${mode}: channel, USER and topic payloads are encrypted end to end`, async () => {
    const a = client(server.url, uid("a"), enc(mode));
    const b = client(proxy.url, uid("b"), enc(mode));
    const eb = record(b);
    await Promise.all([a.login(), b.login()]);
    await b.subscribe("secret-ch");
    const sa = a.createStreamChannel("secret-st");
    const sb = b.createStreamChannel("secret-st");
    await sa.join();
    await sa.joinTopic("t");
    await sb.join();
    await sb.subscribeTopic("t", { users: [a.userId] });
    proxy.seen.length = 0;
    const text = `top secret ${mode} ünïcödé`;
    await a.publish("secret-ch", text, { storeInHistory: true });
    await a.publish("secret-ch", new Uint8Array([0xde, 0xad, 0xbe, 0xef]));
    await a.publish(b.userId, `${text} (user)`, { channelType: "USER" });
    await sa.publishTopicMessage("t", `${text} (topic)`);
    await eventually(() => eb.message.length === 4, { what: "4 decrypted messages" });
    assert.deepEqual(
      eb.message.map((m) => [m.channelType, m.messageType, typeof m.message === "string" ? m.message : [...m.message]]),
      [
        ["MESSAGE", "STRING", text],
        ["MESSAGE", "BINARY", [0xde, 0xad, 0xbe, 0xef]],
        ["USER", "STRING", `${text} (user)`],
        ["STREAM", "STRING", `${text} (topic)`],
      ],
    );
    const wire = Buffer.concat(proxy.seen);
    assert.ok(wire.length > 0);
    assert.equal(wire.indexOf(Buffer.from("top secret")), -1, "the server relayed no plaintext");
    assert.equal(wire.indexOf(Buffer.from([0xde, 0xad, 0xbe, 0xef])), -1);
    const h = await b.history.getMessages("secret-ch", "MESSAGE");
    assert.deepEqual(h.messageList.map((m) => m.message), [text], "stored ciphertext decrypts on read");
    assert.equal(eb.error.length, 0);
  });
}

test("§2.2 [decision]: a payload that does not decrypt is never delivered; an `error` event reports it", async () => {
  const a = client(server.url, uid("a"), enc("AES_256_GCM", "key-one"));
  const b = client(server.url, uid("b"), enc("AES_256_GCM", "key-two"));
  const eb = record(b);
  await Promise.all([a.login(), b.login()]);
  await b.subscribe("mismatch");
  await a.publish("mismatch", "for key-one only");
  await a.publish(b.userId, "also", { channelType: "USER" });
  await eventually(() => eb.error.length === 2, { what: "2 error events" });
  assert.equal(eb.message.length, 0);
  const e = eb.error[0];
  assert.equal(e.error.errorCode, -11023);
  assert.equal(e.error.operation, "decrypt");
  assert.deepEqual([e.channelType, e.channelName, e.publisher], ["MESSAGE", "mismatch", a.userId]);
  assert.equal(eb.error[1].channelType, "USER");
  // The receiver goes on: a plaintext client's message (not decryptable either) is also
  // reported, and the link stays up.
  assert.equal(eb.linkState.at(-1).currentState, "CONNECTED");
});
