//! Parser robustness (token.md §12, T36–T38, T56): a deterministic pseudo-random mutation
//! loop over the vector tokens (truncations, base64 character changes, payload mutations
//! re-compressed, garbage) asserting that parsing never panics, is deterministic, and that
//! any change to a signed payload fails the signature; plus the T37 decompression bound.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::{Compression, write::ZlibEncoder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::panic::catch_unwind;
use switchboard_token::{
    AccessToken, MAX_PAYLOAD_LEN, MAX_TOKEN_LEN, Service, TokenBuilder, TokenError, VerifyOptions,
    verify_login, verify_stream_join,
};

const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

fn wrap(payload: &[u8]) -> String {
    format!("007{}", STANDARD.encode(zlib(payload)))
}

fn seed_tokens() -> Vec<String> {
    let v = common::load_vectors();
    ["valid", "invalid"]
        .iter()
        .flat_map(|k| v[*k].as_array().unwrap().clone())
        .map(|e| e["token"].as_str().unwrap().to_owned())
        .collect()
}

/// Parses `token` twice and runs both verifiers, failing with the input on any panic or
/// inconsistency; returns the parse result.
fn exercise(token: &str) -> Result<AccessToken, TokenError> {
    let outcome = catch_unwind(|| {
        let first = AccessToken::parse(token);
        assert_eq!(
            first,
            AccessToken::parse(token),
            "parse is not deterministic"
        );
        if let Ok(t) = &first {
            assert_eq!(
                AccessToken::from_payload(&t.uncompressed()).as_ref(),
                Ok(t),
                "payload round trip"
            );
            let _ = t.signature_valid(CERT);
        }
        let app = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
        let opts = VerifyOptions {
            max_clock_skew: Some(30),
            accept_rtm2: true,
            ..VerifyOptions::default()
        };
        let _ = verify_login(token, app, CERT, "alice", 1_700_000_010, &opts);
        let _ = verify_stream_join(token, app, CERT, "alice", "room-1", u64::MAX, &opts);
        first
    });
    outcome.unwrap_or_else(|_| panic!("panic on token {token:?}"))
}

/// One random change to a byte string: flip, set, insert, delete, truncate, or overwrite a
/// `u16` with a large length.
fn mutate_bytes(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.push(rng.random());
        return;
    }
    let i = rng.random_range(0..bytes.len());
    match rng.random_range(0..6) {
        0 => bytes[i] ^= 1 << rng.random_range(0..8),
        1 => bytes[i] = rng.random(),
        2 => bytes.insert(i, rng.random()),
        3 => {
            bytes.remove(i);
        }
        4 => bytes.truncate(i),
        _ => {
            let v: u16 = if rng.random() { 0xffff } else { rng.random() };
            for (k, b) in v.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = b;
                }
            }
        }
    }
}

#[test]
fn t56_mutated_tokens_never_panic() {
    let seeds = seed_tokens();
    let mut rng = StdRng::seed_from_u64(0x5eed_0007);
    let (mut ok, mut err) = (0u32, 0u32);
    for iteration in 0..20_000 {
        let seed = &seeds[iteration % seeds.len()];
        let mutated = match iteration % 4 {
            // Truncation (T38: any truncation is malformed).
            0 => seed
                .chars()
                .take(rng.random_range(0..=seed.chars().count()))
                .collect(),
            // Base64 character changes, one to three of them.
            1 => {
                let mut chars: Vec<u8> = seed.bytes().collect();
                for _ in 0..rng.random_range(1..=3) {
                    if chars.is_empty() {
                        break;
                    }
                    let i = rng.random_range(0..chars.len());
                    chars[i] = if rng.random_ratio(1, 8) {
                        rng.random_range(0..128)
                    } else {
                        B64[rng.random_range(0..B64.len())]
                    };
                }
                String::from_utf8_lossy(&chars).into_owned()
            }
            // Random garbage after the prefix.
            2 => {
                let len = rng.random_range(0..200);
                let raw: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                format!("007{}", STANDARD.encode(raw))
            }
            // Mutations of the decompressed payload, re-compressed (T40).
            _ => {
                let Ok(original) = AccessToken::parse(seed) else {
                    continue;
                };
                let mut payload = original.uncompressed();
                for _ in 0..rng.random_range(1..=3) {
                    mutate_bytes(&mut rng, &mut payload);
                }
                let token = wrap(&payload);
                if let Ok(t) = exercise(&token) {
                    if payload != original.uncompressed() && original.signature_valid(CERT) {
                        assert!(
                            !t.signature_valid(CERT),
                            "mutated payload still verifies: {token}"
                        );
                    }
                }
                token
            }
        };
        match exercise(&mutated) {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
    }
    eprintln!("mutated tokens: {ok} parsed, {err} refused");
    // Both outcomes must be exercised for the loop to mean anything.
    assert!(ok > 100 && err > 100, "ok = {ok}, err = {err}");
}

#[test]
fn t38_every_truncation_of_every_payload_is_malformed() {
    for seed in seed_tokens() {
        let Ok(t) = AccessToken::parse(&seed) else {
            continue;
        };
        let payload = t.uncompressed();
        // A vector's payload ends exactly after its last declared service, so every
        // shorter prefix cuts a field (T56).
        for cut in 0..payload.len() {
            assert_eq!(
                AccessToken::from_payload(&payload[..cut]),
                Err(TokenError::Malformed),
                "cut at {cut} of {seed}"
            );
        }
    }
}

#[test]
fn t37_decompression_bomb_is_malformed() {
    // 16 MiB of zeros compresses to ~16 KiB; parsing must stop at the 64 KiB bound.
    let bomb = wrap(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < MAX_TOKEN_LEN);
    let start = std::time::Instant::now();
    assert_eq!(AccessToken::parse(&bomb), Err(TokenError::Malformed));
    assert!(
        start.elapsed().as_secs() < 2,
        "bounded decompression took {:?}",
        start.elapsed()
    );
    assert_eq!(
        AccessToken::parse(&wrap(&vec![0u8; MAX_PAYLOAD_LEN + 1])),
        Err(TokenError::Malformed)
    );
}

#[test]
fn t37_signed_token_over_64_kib_is_malformed_at_the_bound() {
    let base = TokenBuilder::new("a1b2c3d4e5f60718293a4b5c6d7e8f90", CERT, 600)
        .issue_ts(1_700_000_000)
        .salt(1)
        .add_service(Service::rtm("alice", 600))
        .build_payload()
        .unwrap();
    let t = AccessToken::from_payload(&base).unwrap();
    let with_padding = |len: usize| {
        let mut info = t.signing_info.clone();
        info.resize(len - 34, 0); // trailing bytes are allowed and signed (T58)
        let mut sealed = AccessToken {
            signing_info: info,
            ..t.clone()
        };
        sealed.signature = sealed.expected_signature(CERT).to_vec();
        wrap(&sealed.uncompressed())
    };
    let at_bound =
        AccessToken::parse(&with_padding(MAX_PAYLOAD_LEN)).expect("64 KiB payload parses");
    assert!(at_bound.signature_valid(CERT));
    assert_eq!(
        AccessToken::parse(&with_padding(MAX_PAYLOAD_LEN + 1)),
        Err(TokenError::Malformed)
    );
}

#[test]
fn t36_overlong_or_non_base64_text_is_malformed() {
    assert_eq!(
        AccessToken::parse(&format!("007{}", "A".repeat(MAX_TOKEN_LEN))),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        AccessToken::parse("007eJx\u{e9}"),
        Err(TokenError::Malformed)
    );
    assert_eq!(AccessToken::parse("007 eJx"), Err(TokenError::Malformed));
}

#[test]
fn t19_tokens_parse_with_and_without_padding() {
    for seed in seed_tokens() {
        let Ok(t) = AccessToken::parse(&seed) else {
            continue;
        };
        let unpadded = seed.trim_end_matches('=');
        assert_eq!(AccessToken::parse(unpadded).as_ref(), Ok(&t), "{seed}");
    }
}
