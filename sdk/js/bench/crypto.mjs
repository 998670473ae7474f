// Benchmark (not a test): end-to-end encryption throughput of the SDK's WebCrypto cipher
// (AES-GCM with a fresh nonce per message), sequential and with 64 operations in flight.
//   node bench/crypto.mjs [milliseconds per case]
import { PayloadCipher } from "../dist/internal.mjs";

const ms = Number(process.argv[2] ?? 2000);
const results = [];
for (const mode of ["AES_128_GCM", "AES_256_GCM"]) {
  const c = await PayloadCipher.create(mode, "bench-key", new Uint8Array(32));
  for (const size of [100, 1024, 32768]) {
    const plain = crypto.getRandomValues(new Uint8Array(size));
    const sealed = await c.encrypt(plain);
    for (const [what, f] of [
      ["encrypt", () => c.encrypt(plain)],
      ["decrypt", () => c.decrypt(sealed)],
    ]) {
      for (const inflight of [1, 64]) {
        let n = 0;
        const end = performance.now() + ms;
        const t0 = performance.now();
        while (performance.now() < end) {
          if (inflight === 1) await f();
          else await Promise.all(Array.from({ length: inflight }, f));
          n += inflight;
        }
        const secs = (performance.now() - t0) / 1000;
        results.push({ mode, size, what, inflight, opsPerSec: Math.round(n / secs), MBps: +((n * size) / secs / 1e6).toFixed(1) });
      }
    }
  }
}
console.table(results);
