#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration (real servers on loopback), the
# agora-token interop test (needs node and npm) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc
