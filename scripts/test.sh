#!/usr/bin/env bash
# `make test`: everything, from a fresh machine. Each stage logs to target/test-logs/;
# the last line counts the tests of every stage. Non-zero exit on any failure.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
LOGS="$ROOT/target/test-logs"
rm -rf "$LOGS"; mkdir -p "$LOGS"
failed_stages=()

stage() { # name command...
  local name=$1; shift
  local t0=$SECONDS
  say "test stage: $name"
  if ! "$@" >"$LOGS/$name.log" 2>&1; then
    failed_stages+=("$name")
    say "FAILED: $name (log: target/test-logs/$name.log)"
    grep -E "^(test .* FAILED|error|thread '.*' panicked|failures:)" "$LOGS/$name.log" | head -20 >&2 || tail -20 "$LOGS/$name.log" >&2
  fi
  say "  $name took $((SECONDS - t0)) s"
}

bash scripts/setup.sh test
stage build bash scripts/build-wasm.sh
stage build-native bash scripts/build-native.sh
stage fmt cargo fmt --all --check
stage clippy cargo clippy -q --workspace --all-targets -- -D warnings
# The wasm glue's other builds: the shipped propagation-only module and the header-read A/B.
stage clippy-features bash -c "cargo clippy -q -p meshwake-filter --all-targets \
  --features value-reads -- -D warnings && cargo clippy -q -p meshwake-filter --all-targets \
  --features propagation-only,value-reads -- -D warnings"
stage unit cargo test -q --workspace --exclude meshwake-tests
# No -q: cargo would pass --quiet to wasm-bindgen-test-runner, which rejects it.
stage wasm-unit env WASM_TARGET=wasm32-unknown-unknown WASM_TEST=1 \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$TOOLS/bin/wasm-bindgen-test-runner" \
  bash -c "source scripts/lib.sh && wasm_cargo test -p meshwake-trace-context -p meshwake-telemetry -p meshwake-identity -p meshwake-core"
for extra in scripts/test.d/*.sh; do
  [ -f "$extra" ] && stage "$(basename "$extra" .sh)" bash "$extra"
done
stage envoy cargo test -q -p meshwake-tests
# The same real-Envoy suites against the native build (target/libmeshwake.so): one harness,
# MESHWAKE_BUILD=native swaps the filter block (tests/src/envoy.rs). The soak stays wasm-only.
stage envoy-native env MESHWAKE_BUILD=native cargo test -q -p meshwake-tests \
  --test foundation --test propagation --test spans --test metrics --test identity \
  --test hostile --test collector_faults --test bad_config

passed=0; failed=0
while read -r p f; do passed=$((passed + p)); failed=$((failed + f)); done < <(
  cat "$LOGS"/*.log | sed -nE 's/.*test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p')
[ ${#failed_stages[@]} -eq 0 ] || say "failed stages: ${failed_stages[*]}"
echo "meshwake: $passed passed, $failed failed"
[ ${#failed_stages[@]} -eq 0 ] && [ "$failed" -eq 0 ]
