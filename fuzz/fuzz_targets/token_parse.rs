//! Fuzzes AccessToken2 parsing and verification (crates/token) with hostile input.
//!
//! The first input byte picks a mode:
//! - even: the rest is a token string; parse, precheck and verify it for login and for a
//!   stream join, then run the time and purpose checks on the parsed token directly (a
//!   fuzzer cannot forge the signature, so verification alone would never reach them);
//! - odd: the rest is a decompressed payload (token.md §4), parsed without base64/zlib so
//!   the fuzzer explores the binary layout itself.
//!
//! Oracles: a parsed payload re-serialises byte for byte (`uncompressed`), and the
//! signature check agrees with the expected signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_token::{AccessToken, VerifyOptions, privilege};

const APP_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const CERT: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";
/// The vectors' issue time, and one second into their hour of validity.
const NOW: u64 = 1_700_000_001;

fn options() -> [VerifyOptions; 2] {
    [
        VerifyOptions::default(),
        VerifyOptions {
            max_clock_skew: Some(300),
            accept_rtm2: true,
            max_lifetime: Some(3600),
        },
    ]
}

fn checks(t: &AccessToken) {
    let payload = t.uncompressed();
    let again = AccessToken::from_payload(&payload).expect("a parsed payload re-parses");
    assert_eq!(&again, t, "from_payload(uncompressed(t)) != t");
    assert_eq!(
        t.signature_valid(CERT),
        t.signature == t.expected_signature(CERT),
        "signature_valid disagrees with expected_signature"
    );
    let _ = t.expires_at();
    for opts in options() {
        for now in [0, NOW, u64::from(u32::MAX) + 1, u64::MAX] {
            let _ = t.check_time(now, &opts);
            for user in ["alice", "", "bob"] {
                let _ = t.check_login(user, now, &opts);
                for p in [
                    privilege::JOIN_CHANNEL,
                    privilege::PUBLISH_DATA_STREAM,
                    0,
                    99,
                ] {
                    let _ = t.check_rtc_privilege("room", user, p, now, &opts);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        if let Ok(t) = AccessToken::from_payload(rest) {
            assert_eq!(t.uncompressed(), rest, "payload does not re-serialise");
            checks(&t);
        }
        return;
    }
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = switchboard_token::client_precheck(s, APP_ID);
    for opts in options() {
        let _ = switchboard_token::verify_login(s, APP_ID, CERT, "alice", NOW, &opts);
        let _ = switchboard_token::verify_stream_join(s, APP_ID, CERT, "alice", "room", NOW, &opts);
    }
    if let Ok(t) = AccessToken::parse(s) {
        checks(&t);
    }
});
