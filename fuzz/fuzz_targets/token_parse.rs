//! Fuzzes token parsing and verification with hostile strings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = switchboard_token::AccessToken::parse(s);
        let _ = switchboard_token::verify_login(
            s,
            "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "f0e1d2c3b4a5968778695a4b3c2d1e0f",
            "alice",
            1_700_000_000,
            &switchboard_token::VerifyOptions::default(),
        );
    }
});
