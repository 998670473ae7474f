#!/usr/bin/env bash
# Builds the coverage-guided fuzz targets of fuzz/ with cargo-fuzz (libFuzzer) on the
# stable toolchain and runs each for SECONDS (default 45): first every committed
# regression input (fuzz/regressions/<target>/) once, then fuzzing from the seed
# corpus (fuzz/corpus/<target>/, read only) plus a scratch corpus kept under
# fuzz/target/. Exits non-zero if any target crashes, leaks past the RSS limit or
# hangs; the input is left in fuzz/target/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment: FUZZ_SANITIZER (address | none, default address), FUZZ_JOBS_NICE (nice
# level, default 0; long runs on a shared machine: 19), FUZZ_ARGS (extra libFuzzer
# flags), FUZZ_CODEGEN_UNITS (default 1, cargo-fuzz's; more builds faster on several
# cores and fuzzes a little slower: .ci/run's short runs use 16), FUZZ_BUILD_ONLY=1
# (build, then stop: .ci/run builds beside the tests). Needs cargo-fuzz (`cargo install --locked cargo-fuzz`). See
# docs/reliability.md, section "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-45}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frame_decode token_parse server_requests)
sanitizer=${FUZZ_SANITIZER:-address}
nice_level=${FUZZ_JOBS_NICE:-0}

command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "fuzz.sh: cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2
  exit 2
}
# cargo-fuzz needs unstable rustc flags (-Z sanitizer, -C passes=sancov-module);
# RUSTC_BOOTSTRAP lets the stable compiler accept them. The fuzz workspace has its own
# target dir (fuzz/target), so a CARGO_TARGET_DIR set for the main workspace is ignored.
export RUSTC_BOOTSTRAP=1
unset CARGO_TARGET_DIR

echo "== building ${targets[*]} (sanitizer $sanitizer)"
build_args=(--release --debug-assertions --sanitizer "$sanitizer" --codegen-units "${FUZZ_CODEGEN_UNITS:-1}")
for t in "${targets[@]}"; do
  nice -n "$nice_level" cargo fuzz build "${build_args[@]}" "$t"
done

if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
  echo "fuzz.sh: built ${targets[*]}"
  exit 0
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/$triple/release
failed=()
for t in "${targets[@]}"; do
  bin=$bin_dir/$t
  work=target/fuzz-corpus/$t
  artifacts=target/artifacts/$t
  mkdir -p "$work" "$artifacts"
  log=target/fuzz-$t.log
  # server_requests keeps its server's storage and history here (tmpfs when there is
  # one: they fsync every commit).
  shm=/dev/shm
  [ -d "$shm" ] || shm=${TMPDIR:-/tmp}
  export SWITCHBOARD_FUZZ_DATA=$shm/switchboard-fuzz-$$-$t
  common=(-rss_limit_mb=2048 -timeout=60 -artifact_prefix="$artifacts/")
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    echo "== $t: replaying regressions/$t ($(ls "regressions/$t" | wc -l) inputs)"
    if ! nice -n "$nice_level" "$bin" "${common[@]}" -runs=0 "regressions/$t" >"$log.regressions" 2>&1; then
      tail -40 "$log.regressions" >&2
      echo "== $t: a regression input fails again" >&2
      failed+=("$t(regression)")
      rm -rf "$SWITCHBOARD_FUZZ_DATA"
      continue
    fi
  fi
  if [ "$t" = server_requests ]; then
    # The harness itself: a panic in a server task must crash the target (the panic
    # hook aborts), or every later "no crash" would mean nothing.
    st=0
    SWITCHBOARD_FUZZ_SELFTEST_PANIC=1 "$bin" -runs=1 -artifact_prefix="$work-selftest-" \
      "corpus/$t/seed_heartbeat_4" >"$log.selftest" 2>&1 || st=$?
    rm -f "$work-selftest-"*
    if [ "$st" -eq 0 ] || ! grep -q "deadly signal" "$log.selftest"; then
      tail -20 "$log.selftest" >&2
      echo "== $t: a panic in a server task did not crash the target" >&2
      failed+=("$t(self-test)")
      rm -rf "$SWITCHBOARD_FUZZ_DATA"
      continue
    fi
    echo "== $t: self-test passed (a panic in a server task crashes the target)"
  fi
  echo "== $t: fuzzing for ${secs}s"
  # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
  if nice -n "$nice_level" "$bin" "${common[@]}" -max_total_time="$secs" -print_final_stats=1 \
    ${FUZZ_ARGS:-} "$work" "corpus/$t" >"$log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed "s/^/   $t: /"
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed "s/^/   /"
  else
    tail -60 "$log" >&2
    echo "== $t: CRASH (input in fuzz/$artifacts/, log fuzz/$log)" >&2
    failed+=("$t")
  fi
  rm -rf "$SWITCHBOARD_FUZZ_DATA"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]} (${secs}s each)"
