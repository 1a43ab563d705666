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
# The harness (sink, load, hotpath) with the `harness` profile: binaries in target/harness/.
cargo build -q --profile harness -p meshwake-bench
exec python3 bench/run.py --sustained-duration "${BENCH_SUSTAINED_S:-60}" "$@"
