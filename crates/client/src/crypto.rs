//! End-to-end payload encryption (api.md §2.2 and its `[decision]`, R19, R20).
//!
//! The key is derived as the 2.3.0 Web SDK derives it: the first L bytes (L = 16 for
//! `AES_128_GCM`, 32 for `AES_256_GCM`) of PBKDF2-HMAC-SHA256(password = `cipher_key`,
//! salt = the configured salt zero-padded to 32 bytes, 1000 iterations, output L + 12
//! bytes). Unlike that build, every message gets a fresh random 12-byte nonce, sent in
//! front of the AES-GCM output: `nonce ‖ ciphertext ‖ tag` (16-byte tag, no padding, no
//! associated data). `vectors/encryption.json` at the repo root holds vectors from an
//! independent implementation that both SDKs' tests check.
//!
//! The message type stays the plaintext's. A BINARY payload travels as the sealed bytes;
//! a STRING payload must be UTF-8 on the wire (R64), so it travels as the standard
//! base64 (with padding) of the sealed bytes — the same wire form as the TypeScript SDK.

use crate::types::{ClientConfig, EncryptionMode, RtmError};
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use rand::RngCore;
use switchboard_protocol::ErrorCode;
use switchboard_protocol::pb;

/// Bytes of the nonce in front of every sealed payload.
pub(crate) const NONCE_LEN: usize = 12;
/// Bytes of the GCM tag at the end of every sealed payload.
pub(crate) const TAG_LEN: usize = 16;
/// PBKDF2 iterations.
const ITERATIONS: u32 = 1000;
/// Largest salt; shorter ones are zero-padded to this length.
pub(crate) const SALT_LEN: usize = 32;

/// The key length of `mode` in bytes; `None` for [`EncryptionMode::None`].
pub(crate) fn key_len(mode: EncryptionMode) -> Option<usize> {
    match mode {
        EncryptionMode::None => None,
        EncryptionMode::Aes128Gcm => Some(16),
        EncryptionMode::Aes256Gcm => Some(32),
    }
}

/// The key of `mode` derived from `cipher_key` and `salt` (at most 32 bytes); empty for
/// [`EncryptionMode::None`].
pub(crate) fn derive_key(mode: EncryptionMode, cipher_key: &str, salt: &[u8]) -> Vec<u8> {
    let Some(len) = key_len(mode) else {
        return Vec::new();
    };
    let mut padded = [0u8; SALT_LEN];
    let n = salt.len().min(SALT_LEN);
    padded[..n].copy_from_slice(&salt[..n]);
    let mut out = vec![0u8; len + NONCE_LEN];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(cipher_key.as_bytes(), &padded, ITERATIONS, &mut out);
    out.truncate(len);
    out
}

/// The AES-GCM instance of one key.
enum Aes {
    A128(Box<Aes128Gcm>),
    A256(Box<Aes256Gcm>),
}

/// Seals and opens payloads with one derived key.
pub(crate) struct Cipher {
    aes: Aes,
}

impl Cipher {
    /// The cipher `config` asks for: `None` without encryption. Fails with −10020
    /// (`RTM_ERROR_INVALID_ENCRYPTION_PARAMETER`) when encryption is on without a
    /// non-empty `cipher_key` or with a salt longer than 32 bytes (R19).
    pub(crate) fn from_config(config: &ClientConfig) -> Result<Option<Cipher>, RtmError> {
        if config.encryption_mode == EncryptionMode::None {
            return Ok(None);
        }
        let bad = |why: &str| RtmError::new(ErrorCode::InvalidEncryptionParameter, "new", why);
        let key = match config.cipher_key.as_deref() {
            Some(k) if !k.is_empty() => k,
            _ => return Err(bad("encryption needs a non-empty cipher_key (R19)")),
        };
        if config.salt.len() > SALT_LEN {
            return Err(bad("salt is longer than 32 bytes (R19)"));
        }
        let raw = derive_key(config.encryption_mode, key, &config.salt);
        Cipher::from_key(&raw)
            .map(Some)
            .ok_or_else(|| bad("unsupported key length"))
    }

    /// A cipher over raw key bytes: 16 (AES-128) or 32 (AES-256); `None` otherwise.
    pub(crate) fn from_key(raw: &[u8]) -> Option<Cipher> {
        let aes = match raw.len() {
            16 => Aes::A128(Box::new(Aes128Gcm::new_from_slice(raw).ok()?)),
            32 => Aes::A256(Box::new(Aes256Gcm::new_from_slice(raw).ok()?)),
            _ => return None,
        };
        Some(Cipher { aes })
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext` under the given nonce.
    pub(crate) fn seal_with(
        &self,
        nonce: &[u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, aes_gcm::Error> {
        let n = Nonce::from_slice(nonce);
        let sealed = match &self.aes {
            Aes::A128(a) => a.encrypt(n, plaintext)?,
            Aes::A256(a) => a.encrypt(n, plaintext)?,
        };
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext` under a fresh random nonce.
    pub(crate) fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, aes_gcm::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with(&nonce, plaintext)
    }

    /// The plaintext of `nonce ‖ ciphertext ‖ tag`; fails when it is too short or does
    /// not authenticate under this key.
    pub(crate) fn open(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(format!(
                "encrypted payload of {} bytes is shorter than nonce and tag",
                payload.len()
            ));
        }
        let (nonce, sealed) = payload.split_at(NONCE_LEN);
        let n = Nonce::from_slice(nonce);
        let plain = match &self.aes {
            Aes::A128(a) => a.decrypt(n, sealed),
            Aes::A256(a) => a.decrypt(n, sealed),
        };
        plain.map_err(|_| "the payload does not authenticate under this key".to_string())
    }

    /// The wire form of a payload of `message_type` for `op`: sealed, and base64 text
    /// for STRING. Fails with −11023 (`RTM_ERROR_CHANNEL_ENCRYPT_MESSAGE_FAILED`).
    pub(crate) fn seal_payload(
        &self,
        op: &str,
        message_type: pb::MessageType,
        plaintext: &[u8],
    ) -> Result<Bytes, RtmError> {
        let sealed = self.seal(plaintext).map_err(|e| {
            RtmError::new(
                ErrorCode::ChannelEncryptMessageFailed,
                op,
                format!("encryption failed: {e}"),
            )
        })?;
        Ok(match message_type {
            pb::MessageType::String => Bytes::from(BASE64.encode(sealed)),
            _ => Bytes::from(sealed),
        })
    }

    /// The plaintext of a received payload of wire type `message_type` (see
    /// [`Self::seal_payload`]); `Err` with why when it does not decrypt.
    pub(crate) fn open_payload(&self, message_type: i32, payload: &[u8]) -> Result<Bytes, String> {
        let sealed;
        let sealed_bytes = if message_type == pb::MessageType::String as i32 {
            sealed = BASE64
                .decode(payload)
                .map_err(|e| format!("a STRING payload is not base64: {e}"))?;
            &sealed[..]
        } else {
            payload
        };
        self.open(sealed_bytes).map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    //! Every case of `vectors/encryption.json` (independent Python implementation):
    //! derive, seal with the given nonce, open; plus random nonces and failures.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn mode_of(s: &str) -> EncryptionMode {
        match s {
            "AES_128_GCM" => EncryptionMode::Aes128Gcm,
            "AES_256_GCM" => EncryptionMode::Aes256Gcm,
            other => panic!("unknown mode {other}"),
        }
    }

    /// (mode, cipherKey, salt, key, nonce, plaintext, payload) of every vector.
    type Case = (
        EncryptionMode,
        String,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
    );

    fn cases() -> Vec<Case> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/encryption.json");
        let text = std::fs::read_to_string(path).expect("read vectors/encryption.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
        let field = |c: &serde_json::Value, k: &str| -> String {
            c[k].as_str()
                .unwrap_or_else(|| panic!("field {k}"))
                .to_string()
        };
        json["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| {
                (
                    mode_of(&field(c, "mode")),
                    field(c, "cipherKey"),
                    hex(&field(c, "saltHex")),
                    hex(&field(c, "keyHex")),
                    hex(&field(c, "nonceHex")),
                    hex(&field(c, "plaintextHex")),
                    hex(&field(c, "payloadHex")),
                )
            })
            .collect()
    }

    #[test]
    fn every_shared_vector_derives_seals_and_opens() {
        let cases = cases();
        assert!(cases.len() >= 6, "at least six vectors");
        for (i, (mode, cipher_key, salt, key, nonce, plaintext, payload)) in
            cases.into_iter().enumerate()
        {
            assert_eq!(derive_key(mode, &cipher_key, &salt), key, "case {i}: key");
            let cipher = Cipher::from_key(&key).expect("cipher");
            let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("12-byte nonce");
            let sealed = cipher.seal_with(&nonce, &plaintext).expect("seal");
            assert_eq!(sealed, payload, "case {i}: payload");
            assert_eq!(
                sealed.len(),
                NONCE_LEN + plaintext.len() + TAG_LEN,
                "case {i}: no padding"
            );
            assert_eq!(cipher.open(&payload).expect("open"), plaintext, "case {i}");
            // The config path derives the same key.
            let mut config = ClientConfig::new("ws://unused");
            config.encryption_mode = mode;
            config.cipher_key = Some(cipher_key.clone());
            config.salt = salt.clone();
            let from_config = Cipher::from_config(&config).expect("valid").expect("on");
            assert_eq!(from_config.open(&payload).expect("open"), plaintext);
        }
    }

    #[test]
    fn the_vectors_cover_what_was_agreed() {
        let cases = cases();
        let has = |f: &dyn Fn(&Case) -> bool| cases.iter().any(f);
        assert!(has(&|c| c.0 == EncryptionMode::Aes128Gcm));
        assert!(has(&|c| c.0 == EncryptionMode::Aes256Gcm));
        assert!(has(&|c| c.2.is_empty()), "an empty salt");
        assert!(has(&|c| c.2.len() == 32), "a 32-byte salt");
        assert!(has(&|c| c.5.is_empty()), "an empty plaintext");
        assert!(
            has(&|c| std::str::from_utf8(&c.5).is_ok_and(|s| !s.is_ascii())),
            "a non-ASCII string"
        );
        assert!(has(&|c| c.5.len() == 1024), "a 1 KiB binary");
    }

    #[test]
    fn fresh_nonce_per_message_and_wrong_keys_fail() {
        let key = derive_key(EncryptionMode::Aes256Gcm, "k", b"salt");
        let cipher = Cipher::from_key(&key).expect("cipher");
        let a = cipher.seal(b"same").expect("seal");
        let b = cipher.seal(b"same").expect("seal");
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "a fresh nonce each time");
        assert_eq!(cipher.open(&a).expect("open"), b"same");
        let other = Cipher::from_key(&derive_key(EncryptionMode::Aes256Gcm, "other", b"salt"))
            .expect("cipher");
        assert!(other.open(&a).is_err(), "another key does not open it");
        let mut tampered = a.clone();
        *tampered.last_mut().expect("tag") ^= 1;
        assert!(cipher.open(&tampered).is_err(), "a changed tag fails");
        assert!(
            cipher.open(&a[..NONCE_LEN + TAG_LEN - 1]).is_err(),
            "too short"
        );
    }

    #[test]
    fn string_payloads_travel_as_base64_binary_as_bytes() {
        let cipher = Cipher::from_key(&[7u8; 16]).expect("cipher");
        let s = cipher
            .seal_payload("publish", pb::MessageType::String, "héllo".as_bytes())
            .expect("seal");
        assert!(std::str::from_utf8(&s).is_ok(), "UTF-8 on the wire (R64)");
        let opened = cipher
            .open_payload(pb::MessageType::String as i32, &s)
            .expect("open");
        assert_eq!(&opened[..], "héllo".as_bytes());
        let b = cipher
            .seal_payload("publish", pb::MessageType::Binary, &[0, 255, 1])
            .expect("seal");
        assert_eq!(b.len(), NONCE_LEN + 3 + TAG_LEN);
        let opened = cipher
            .open_payload(pb::MessageType::Binary as i32, &b)
            .expect("open");
        assert_eq!(&opened[..], &[0, 255, 1]);
        assert!(
            cipher
                .open_payload(pb::MessageType::String as i32, b"not base64!")
                .is_err()
        );
    }

    #[test]
    fn bad_settings_fail_with_10020() {
        let mut config = ClientConfig::new("ws://unused");
        assert!(Cipher::from_config(&config).expect("none").is_none());
        config.encryption_mode = EncryptionMode::Aes128Gcm;
        let e = Cipher::from_config(&config).err().expect("no key");
        assert_eq!(e.code, -10020);
        config.cipher_key = Some(String::new());
        assert_eq!(
            Cipher::from_config(&config).err().expect("empty").code,
            -10020
        );
        config.cipher_key = Some("k".into());
        config.salt = vec![0; 33];
        assert_eq!(
            Cipher::from_config(&config).err().expect("salt").code,
            -10020
        );
        config.salt = vec![0; 32];
        assert!(Cipher::from_config(&config).expect("valid").is_some());
    }
}
