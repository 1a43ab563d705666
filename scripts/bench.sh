#!/usr/bin/env bash
# `make bench`: side-by-side benchmark of meshwake (wasm and native builds) against a bare
# Envoy, no-op filters and Envoy's built-in OpenTelemetry tracer; writes docs/bench-latest.{md,json}.
# Extra arguments go to bench/run.py (e.g. --phases cases --reps 5 --sustained-duration 60).
# BENCH_SUSTAINED_S sets the sustained-load phase's duration (default 60 s).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
scripts/setup.sh bench
ensure_deb wrk valgrind
scripts/build-wasm.sh
scripts/build-native.sh
# The harness has its own workspace (not a member of the root one) and its own target dir.
CARGO_TARGET_DIR="$ROOT/target/bench-harness" cargo build -q --release \
  --manifest-path bench/harness/Cargo.toml
exec python3 bench/run.py --sustained-duration "${BENCH_SUSTAINED_S:-60}" "$@"
