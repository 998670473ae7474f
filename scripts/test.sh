#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (real servers on loopback), the
# agora-token interop test (needs node and npm) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The server's modules stand in layers, no crate has a module loop (docs/architecture.md),
# docs/rules.md lists every rule with the tests that cite it, and module headers name
# only rules their tests check.
python3 scripts/check-layers.py
python3 scripts/rule-coverage.py --check
python3 scripts/header-rules.py
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
# The TypeScript SDK (sdk/js): unit tests and Node integration tests against the real
# switchboard binary built here (npm ci needs node and npm; see sdk/js/README.md).
# The switchboard binary, and the Rust peer of the TypeScript SDK's encryption interop
# test (the `chat` example, sdk/js/test/node/interop.test.mjs). With the whole
# workspace's targets the features resolve as for the tests above, so this reuses what
# nextest built; `cargo build -p switchboard-cli` alone would resolve them apart and
# compile the server and its dependents again.
cargo build --workspace --all-targets
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export SWITCHBOARD_BIN="${SWITCHBOARD_BIN:-$target_dir/debug/switchboard}"
(cd sdk/js && npm ci --no-audit --no-fund && npm test)
# The web console's JavaScript (crates/server/console/, no build step), type-checked
# from its JSDoc with the SDK's TypeScript; its browser test is in sdk/js/test/browser/.
(cd sdk/js && npx tsc -p ../../crates/server/console/tsconfig.json)
