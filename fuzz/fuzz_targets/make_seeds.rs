//! Writes the seed corpus `fuzz/corpus/<target>/` (one valid request of each type, a
//! few multi-message frames and server messages, the token vectors). Not a fuzz
//! target: built by cargo-fuzz like the targets (so it shares their build) and run once
//! after a protocol change:
//!
//! `cargo fuzz build make_seeds && SEED_VECTORS=/work/shared/vectors/tokens.json
//! fuzz/target/<triple>/release/make_seeds -runs=1` (it writes once; later runs rewrite
//! the same files).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|_data: &[u8]| {
    switchboard_fuzz::seeds::check();
    let vectors =
        std::env::var("SEED_VECTORS").unwrap_or_else(|_| "/work/shared/vectors/tokens.json".into());
    let json = std::fs::read_to_string(&vectors).expect("read the token vectors");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let n = switchboard_fuzz::seeds::write(&root, &json).expect("write seeds");
    eprintln!("make_seeds: wrote {n} seeds under {}", root.display());
});
