// End-to-end encryption against the shared vectors (vectors/encryption.json, also read
// by the Rust SDK's tests): key derivation, encryption with the vector's nonce, and
// decryption of every payload (api.md §2.2 [decision], R19, R20).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { PayloadCipher, deriveKeyBytes, paddedSalt } from "../../dist/internal.mjs";

const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const { cases } = JSON.parse(readFileSync(new URL("../../../../vectors/encryption.json", import.meta.url), "utf8"));

test("the vectors file has cases of both modes", () => {
  assert.ok(cases.length >= 2);
  assert.ok(cases.some((c) => c.mode === "AES_128_GCM") && cases.some((c) => c.mode === "AES_256_GCM"));
});

for (const [i, c] of cases.entries()) {
  test(`vector ${i} (${c.mode}, salt ${c.saltHex.length / 2} B, plaintext ${c.plaintextHex.length / 2} B): derive, encrypt, decrypt`, async () => {
    const key = await deriveKeyBytes(c.mode, c.cipherKey, hex(c.saltHex));
    assert.equal(toHex(key), c.keyHex);
    const cipher = await PayloadCipher.create(c.mode, c.cipherKey, hex(c.saltHex));
    const sealed = await cipher.encrypt(hex(c.plaintextHex), hex(c.nonceHex));
    assert.equal(toHex(sealed), c.payloadHex);
    const plain = await cipher.decrypt(hex(c.payloadHex));
    assert.equal(toHex(plain), c.plaintextHex);
  });
}

test("a fresh random nonce per message: two encryptions differ and both decrypt", async () => {
  const cipher = await PayloadCipher.create("AES_256_GCM", "k", new Uint8Array([1, 2]));
  const a = await cipher.encrypt(new TextEncoder().encode("same"));
  const b = await cipher.encrypt(new TextEncoder().encode("same"));
  assert.notEqual(toHex(a.subarray(0, 12)), toHex(b.subarray(0, 12)));
  assert.equal(a.length, 12 + 4 + 16);
  assert.equal(new TextDecoder().decode(await cipher.decrypt(b)), "same");
});

test("tampered, truncated or wrong-key payloads do not decrypt", async () => {
  const c = cases[0];
  const cipher = await PayloadCipher.create(c.mode, c.cipherKey, hex(c.saltHex));
  const bad = hex(c.payloadHex);
  bad[bad.length - 1] ^= 1;
  await assert.rejects(cipher.decrypt(bad));
  await assert.rejects(cipher.decrypt(hex(c.payloadHex).subarray(0, 20)));
  const other = await PayloadCipher.create(c.mode, c.cipherKey + "x", hex(c.saltHex));
  await assert.rejects(other.decrypt(hex(c.payloadHex)));
});

test("the salt is zero-padded to 32 bytes", () => {
  assert.deepEqual([...paddedSalt(new Uint8Array([7]))], [7, ...new Array(31).fill(0)]);
  assert.equal(paddedSalt(undefined).length, 32);
});
