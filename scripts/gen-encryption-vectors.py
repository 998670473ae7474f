#!/usr/bin/env python3
"""Generate vectors/encryption.json: shared end-to-end encryption vectors for both SDKs.

An independent implementation of api.md §2.2 (this service's variant) using the
`cryptography` package from PyPI, so the Rust SDK (aes-gcm + pbkdf2 crates) and the
TypeScript SDK (WebCrypto) are each checked against a third implementation:

    key     = first L bytes of PBKDF2-HMAC-SHA256(password = cipherKey,
              salt = configured salt zero-padded to 32 bytes, 1000 iterations,
              output L + 12 bytes), L = 16 (AES_128_GCM) or 32 (AES_256_GCM)
    payload = nonce (12 bytes) || AES-GCM ciphertext || 16-byte tag, no padding, no AAD

Every input is fixed in this file, so the output is deterministic.

Rerun (from the repo root):

    pip install cryptography        # once
    python3 scripts/gen-encryption-vectors.py > vectors/encryption.json

The tests only READ vectors/encryption.json; they never need Python. The format is
agreed between the SDKs; do not change it:
{"cases":[{"mode","cipherKey","saltHex","keyHex","nonceHex","plaintextHex","payloadHex"}]}
"""

import hashlib
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

KEY_LEN = {"AES_128_GCM": 16, "AES_256_GCM": 32}


def derive_key(mode: str, cipher_key: str, salt: bytes) -> bytes:
    length = KEY_LEN[mode]
    if len(salt) > 32:
        raise ValueError("salt longer than 32 bytes")
    padded = salt + b"\x00" * (32 - len(salt))
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=length + 12, salt=padded, iterations=1000)
    return kdf.derive(cipher_key.encode("utf-8"))[:length]


def seeded(label: str, n: int) -> bytes:
    """n deterministic bytes from a label (SHA-256 in counter mode)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


CASES = [
    # (mode, cipherKey, salt, nonce label, plaintext)
    ("AES_128_GCM", "secret-128", b"", "n1", b"hello, switchboard"),
    ("AES_256_GCM", "secret-256", b"", "n2", b"hello, switchboard"),
    ("AES_128_GCM", "pa55word", bytes(range(32)), "n3", b"32-byte salt, 128-bit key"),
    ("AES_256_GCM", "pa55word", bytes(range(32)), "n4", b"32-byte salt, 256-bit key"),
    ("AES_256_GCM", "empty-plaintext", b"short salt", "n5", b""),
    ("AES_128_GCM", "empty-plaintext", b"\x01\x02\x03", "n6", b""),
    ("AES_256_GCM", "unicode ключ 🔑", "salt ü".encode(), "n7", "Grüße, 世界 — ünïcödé 🎉".encode()),
    ("AES_128_GCM", "binary", seeded("salt8", 32), "n8", seeded("binary-1k", 1024)),
    ("AES_256_GCM", "binary", seeded("salt9", 17), "n9", seeded("binary-1k", 1024)),
]


def main() -> None:
    cases = []
    for mode, cipher_key, salt, nonce_label, plaintext in CASES:
        key = derive_key(mode, cipher_key, salt)
        nonce = seeded(nonce_label, 12)
        sealed = AESGCM(key).encrypt(nonce, plaintext, None)  # ciphertext || tag
        cases.append(
            {
                "mode": mode,
                "cipherKey": cipher_key,
                "saltHex": salt.hex(),
                "keyHex": key.hex(),
                "nonceHex": nonce.hex(),
                "plaintextHex": plaintext.hex(),
                "payloadHex": (nonce + sealed).hex(),
            }
        )
    json.dump({"cases": cases}, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
