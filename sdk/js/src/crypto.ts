/**
 * End-to-end payload encryption (api.md §2.2 and its [decision]): AES-128-GCM or
 * AES-256-GCM with the key derived as the 2.3.0 build does — PBKDF2-HMAC-SHA256(password
 * = cipherKey, salt zero-padded to 32 bytes, 1000 iterations, L + 12 bytes; key = the
 * first L bytes) — but a fresh random 12-byte nonce per message, sent in front:
 * `nonce ‖ ciphertext ‖ tag` (16-byte tag), no zero padding. WebCrypto only
 * (`globalThis.crypto.subtle`: Node 20 and browsers).
 */
import type { EncryptionMode } from "./constants";

const NONCE = 12;
const TAG = 16;
const ITERATIONS = 1000;

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("WebCrypto (globalThis.crypto.subtle) is not available");
  return s;
}

/** Key length in bytes of a mode. */
export function keyLength(mode: EncryptionMode): number {
  return mode === "AES_256_GCM" ? 32 : 16;
}

/** The salt as used in the derivation: the configured bytes zero-padded to 32. */
export function paddedSalt(salt: Uint8Array | undefined): Uint8Array {
  const out = new Uint8Array(32);
  if (salt) out.set(salt.subarray(0, 32));
  return out;
}

/** The raw key bytes: the first L bytes of PBKDF2-HMAC-SHA256 output of L + 12 bytes. */
export async function deriveKeyBytes(mode: EncryptionMode, cipherKey: string, salt: Uint8Array | undefined): Promise<Uint8Array> {
  const L = keyLength(mode);
  const base = await subtle().importKey("raw", new TextEncoder().encode(cipherKey), "PBKDF2", false, ["deriveBits"]);
  const bits = await subtle().deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: paddedSalt(salt) as BufferSource, iterations: ITERATIONS },
    base,
    (L + NONCE) * 8,
  );
  return new Uint8Array(bits).slice(0, L);
}

/** Encrypts and decrypts payloads with one derived key. */
export class PayloadCipher {
  private constructor(private readonly key: CryptoKey) {}

  /** Derives the key of `mode` from `cipherKey` and `salt`. */
  static async create(mode: EncryptionMode, cipherKey: string, salt: Uint8Array | undefined): Promise<PayloadCipher> {
    return PayloadCipher.fromKey(await deriveKeyBytes(mode, cipherKey, salt));
  }

  /** A cipher with these raw key bytes (16 or 32). */
  static async fromKey(raw: Uint8Array): Promise<PayloadCipher> {
    const key = await subtle().importKey("raw", raw as BufferSource, "AES-GCM", false, ["encrypt", "decrypt"]);
    return new PayloadCipher(key);
  }

  /** `nonce ‖ ciphertext ‖ tag` of `plaintext`, with `nonce` random unless given (tests). */
  async encrypt(plaintext: Uint8Array, nonce?: Uint8Array): Promise<Uint8Array> {
    const iv = nonce ?? globalThis.crypto.getRandomValues(new Uint8Array(NONCE));
    const ct = new Uint8Array(
      await subtle().encrypt({ name: "AES-GCM", iv: iv as BufferSource, tagLength: TAG * 8 }, this.key, plaintext as BufferSource),
    );
    const out = new Uint8Array(NONCE + ct.length);
    out.set(iv, 0);
    out.set(ct, NONCE);
    return out;
  }

  /** The plaintext of `nonce ‖ ciphertext ‖ tag`; rejects when it does not authenticate. */
  async decrypt(payload: Uint8Array): Promise<Uint8Array> {
    if (payload.length < NONCE + TAG) throw new Error(`encrypted payload of ${payload.length} bytes is shorter than nonce and tag`);
    const pt = await subtle().decrypt(
      { name: "AES-GCM", iv: payload.subarray(0, NONCE) as BufferSource, tagLength: TAG * 8 },
      this.key,
      payload.subarray(NONCE) as BufferSource,
    );
    return new Uint8Array(pt);
  }
}
