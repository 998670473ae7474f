// End-to-end encryption between the two SDKs (api.md §2.2 [decision], R19): a Rust
// client (crates/client's `chat` example, AES-256-GCM with the same key and salt) and
// this SDK exchange encrypted channel messages through the real server, each opening
// what the other sealed. The example binary is built by scripts/test.sh
// (`cargo build -p switchboard-client --examples`); $SWITCHBOARD_CHAT_EXAMPLE names
// another one.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { BIN, OPEN_APP, client, eventually, record, startServer, uid } from "./harness.mjs";

const CHAT = process.env.SWITCHBOARD_CHAT_EXAMPLE ?? join(dirname(BIN), "examples", "chat");
const KEY = "interop secret";
// The salt the chat example uses (crates/client/examples/chat.rs).
const SALT = new TextEncoder().encode("switchboard chat");

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("R19, §2.2: a Rust client and a TypeScript client exchange AES-256-GCM messages, each opening the other's", async () => {
  assert.ok(existsSync(CHAT), `the Rust chat example is not built at ${CHAT}: cargo build -p switchboard-client --examples`);
  const channel = uid("interop");
  const [tsUser, rustUser] = [uid("ts"), uid("rust")];
  const rust = spawn(CHAT, [rustUser, channel], {
    stdio: ["pipe", "pipe", "pipe"],
    env: {
      ...process.env,
      SWITCHBOARD_APP_ID: OPEN_APP,
      SWITCHBOARD_APP_CERT: "",
      SWITCHBOARD_ENDPOINT: server.url,
      SWITCHBOARD_CIPHER_KEY: KEY,
    },
  });
  let out = "";
  rust.stdout.on("data", (d) => (out += d.toString()));
  let errors = "";
  rust.stderr.on("data", (d) => (errors += d.toString()));
  try {
    await eventually(() => out.includes(`${rustUser} in #${channel}`), { timeout: 20000, what: "the Rust client subscribed" });
    const ts = client(server.url, tsUser, { encryptionMode: "AES_256_GCM", cipherKey: KEY, salt: SALT });
    const ev = record(ts);
    await ts.login();
    await ts.subscribe(channel);
    await ts.publish(channel, "hello from typescript");
    await eventually(() => out.includes(`[#${channel}] ${tsUser}: hello from typescript`), { what: "the Rust client opened the TypeScript message" });
    rust.stdin.write("hello from rust\n");
    await eventually(() => ev.message.some((m) => m.publisher === rustUser && m.message === "hello from rust"), { what: "the TypeScript client opened the Rust message" });
    assert.equal(ev.error.length, 0, `nothing failed to decrypt: ${JSON.stringify(ev.error)}`);
    assert.ok(!out.includes("could not be read"), out);
  } finally {
    rust.stdin.end();
    rust.kill();
    if (errors.trim()) console.log(errors);
  }
});
