// Benchmark (not a test): messages per second one Node client of this SDK receives from
// a fanout. Starts `switchboard serve` (app with the publish rate lifted), subscribes one
// SDK client to a channel, and runs `switchboard bench fanout --raw` as the publisher
// load on the same channel. Prints the SDK client's receive rate over the steady part.
//
//   SWITCHBOARD_BIN=…/release/switchboard node bench/fanout.mjs [seconds] [publishers] [window]
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import AgoraRTM from "../dist/index.mjs";
import { BIN } from "../test/node/harness.mjs";

const seconds = Number(process.argv[2] ?? 10);
const publishers = Number(process.argv[3] ?? 2);
const window = Number(process.argv[4] ?? 512);
const APP = "0123456789abcdef0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "sb-js-bench-"));
writeFileSync(
  join(dir, "bench.toml"),
  `listen = "127.0.0.1:0"\ndata_dir = "${dir}"\n[[apps]]\nid = "${APP}"\n[apps.limits]\npublish_rate_per_channel = 0\n`,
);
const server = spawn(BIN, ["serve", "--config", join(dir, "bench.toml")], { stdio: ["ignore", "pipe", "inherit"] });
const addr = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = /listening on ws:\/\/([0-9.]+:\d+)/.exec(out);
    if (m) resolve(m[1]);
  });
  server.on("exit", (c) => reject(new Error(`server exited ${c}`)));
});

const rx = new AgoraRTM.RTM(APP, "js-bench-rx", { logLevel: "error", privateConfig: { serviceType: ["MESSAGE"], accessPointHosts: [`ws://${addr}`] } });
let count = 0;
let bytes = 0;
const samples = [];
rx.addEventListener("message", (m) => {
  count++;
  bytes += m.message.length;
});
await rx.login();
await rx.subscribe("jsbench", { withPresence: false });
const timer = setInterval(() => {
  const u = process.cpuUsage();
  samples.push([performance.now(), count, (u.user + u.system) / 1000]);
}, 250);

const load = spawn(
  BIN,
  ["bench", "fanout", "--url", `ws://${addr}`, "--app-id", APP, "--publishers", String(publishers), "--subscribers", "1", "--raw", "--size", "100", "--window", String(window), "--duration", String(seconds), "--channel", "jsbench"],
  { stdio: ["ignore", "pipe", "pipe"] },
);
let loadOut = "";
load.stdout.on("data", (d) => (loadOut += d));
load.stderr.on("data", (d) => (loadOut += d));
await new Promise((r) => load.on("exit", r));
clearInterval(timer);
await rx.logout();
server.kill("SIGTERM");
await new Promise((r) => server.on("exit", r));
rmSync(dir, { recursive: true, force: true });

// Steady part: drop the first and last second of samples.
const steady = samples.filter(([t]) => t > samples[0][0] + 1000 && t < samples.at(-1)[0] - 1000);
const [t0, c0, u0] = steady[0] ?? samples[0];
const [t1, c1, u1] = steady.at(-1) ?? samples.at(-1);
const rate = ((c1 - c0) / (t1 - t0)) * 1000;
// The SDK process's own CPU over the steady part: how much of one core it needed.
const cpuShare = (u1 - u0) / (t1 - t0);
const cpuUsPerMsg = ((u1 - u0) * 1000) / Math.max(1, c1 - c0);
let peak = 0;
for (let i = 4; i < samples.length; i++) peak = Math.max(peak, ((samples[i][1] - samples[i - 4][1]) / (samples[i][0] - samples[i - 4][0])) * 1000);
console.log(loadOut.trim().split("\n").slice(-6).join("\n"));
console.log(JSON.stringify({ node: process.version, publishers, window, seconds, received: count, payloadBytes: bytes, steadyMessagesPerSec: Math.round(rate), peak1sMessagesPerSec: Math.round(peak), clientCpuShare: +cpuShare.toFixed(2), clientCpuUsPerMessage: +cpuUsPerMsg.toFixed(2) }));
