// Issue 16, TLS from the TypeScript SDK in Node: `switchboard serve --tls-cert --tls-key`
// with a certificate the test makes (openssl, self-signed for 127.0.0.1 and localhost),
// and the SDK connecting to its wss:// URL through `ws`, which verifies with Node's TLS.
// The SDK takes no CA setting (agora-rtm-sdk has none): Node trusts an extra CA through
// NODE_EXTRA_CA_CERTS, read when a process starts, so each client runs in a child node
// process. With the certificate trusted, a client logs in, subscribes and gets another
// client's message over wss://; without it the login fails with LOGIN_ABORTED (−10013).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { BIN, OPEN_APP } from "./harness.mjs";

const dist = pathToFileURL(resolve(fileURLToPath(new URL("../../dist/index.mjs", import.meta.url)))).href;

let dir;
let server;
let url;
let certPath;

/** A self-signed server certificate (not a CA) for 127.0.0.1 and localhost. */
function makeCertificate(into) {
  const conf = join(into, "openssl.cnf");
  writeFileSync(
    conf,
    [
      "[req]",
      "distinguished_name = dn",
      "x509_extensions = ext",
      "prompt = no",
      "[dn]",
      "CN = localhost",
      "[ext]",
      "subjectAltName = IP:127.0.0.1, DNS:localhost",
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = critical, digitalSignature",
      "extendedKeyUsage = serverAuth",
      "",
    ].join("\n"),
  );
  const cert = join(into, "cert.pem");
  const key = join(into, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-days", "1", "-config", conf, "-keyout", key, "-out", cert,
  ], { stdio: "ignore" });
  return { cert, key };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "sb-js-tls-"));
  const { cert, key } = makeCertificate(dir);
  certPath = cert;
  server = spawn(BIN, [
    "serve", "--listen", "127.0.0.1:0", "--data-dir", join(dir, "data"), "--app", OPEN_APP,
    "--tls-cert", cert, "--tls-key", key, "--shutdown-grace-ms", "200",
  ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let out = "";
  let err = "";
  const port = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start: ${out} ${err}`)), 20000);
    server.stdout.on("data", (d) => {
      out += d;
      const m = /listening on wss:\/\/[0-9.]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    server.stderr.on("data", (d) => (err += d));
    server.on("exit", (code) => fail(new Error(`server exited ${code}: ${out} ${err}`)));
  });
  url = `wss://127.0.0.1:${port}`;
});

after(async () => {
  if (server && server.exitCode === null) {
    server.kill("SIGTERM");
    await new Promise((r) => (server.exitCode !== null ? r() : server.once("exit", r)));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The child: two clients of the open app; `b` publishes, `a` (subscribed) receives.
// Prints one JSON line: the message received, or the login's error.
const child = `
import AgoraRTM from ${JSON.stringify(dist)};
const url = process.env.SB_URL;
const make = (u) => new AgoraRTM.RTM(process.env.SB_APP, u, {
  logLevel: "none",
  privateConfig: { serviceType: ["MESSAGE", "STREAM"], accessPointHosts: [url] },
});
const out = {};
try {
  const a = make("tls-a" + process.pid);
  const b = make("tls-b" + process.pid);
  await a.login();
  const got = new Promise((ok) => a.addEventListener("message", (m) => ok(m)));
  await a.subscribe("tls-room");
  await b.login();
  await b.publish("tls-room", "over wss");
  const late = new Promise((_, fail) => setTimeout(() => fail(new Error("no message within 10 s")), 10000));
  const m = await Promise.race([got, late]);
  Object.assign(out, { message: m.message, publisher: m.publisher });
  await a.logout();
  await b.logout();
} catch (e) {
  out.error = { code: e?.errorCode ?? null, reason: e?.reason ?? String(e) };
}
console.log(JSON.stringify(out));
process.exit(0);
`;

/** Runs the child with `env` added; its JSON line. */
function runChild(env) {
  return new Promise((ok, fail) => {
    const base = { ...process.env };
    delete base.NODE_EXTRA_CA_CERTS;
    execFile(process.execPath, ["--input-type=module", "-e", child], {
      env: { ...base, SB_URL: url, SB_APP: OPEN_APP, ...env },
      timeout: 60000,
    }, (e, stdout, stderr) => {
      if (e) return fail(new Error(`child failed: ${e.message} ${stderr}`));
      try {
        ok(JSON.parse(stdout.trim().split("\n").pop()));
      } catch (p) {
        fail(new Error(`child printed no JSON: ${stdout} ${stderr}`));
      }
    });
  });
}

test("issue 16: with the server's certificate trusted (NODE_EXTRA_CA_CERTS) the SDK logs in, subscribes and gets a message over wss://", async () => {
  const out = await runChild({ NODE_EXTRA_CA_CERTS: certPath });
  assert.equal(out.error, undefined, JSON.stringify(out));
  assert.equal(out.message, "over wss");
  assert.match(out.publisher, /^tls-b/);
});

test("issue 16: without trusting it the login fails with LOGIN_ABORTED (-10013), not a timeout", async () => {
  const out = await runChild({});
  assert.ok(out.error, JSON.stringify(out));
  assert.equal(out.error.code, -10013, JSON.stringify(out));
  assert.match(out.error.reason, /cannot connect to wss:\/\//);
});
