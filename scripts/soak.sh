#!/usr/bin/env bash
# `make soak`: mixed normal and hostile traffic through a real Envoy (FAIL_CLOSED, two
# workers) for SOAK_SECONDS (default 600) while the collector flaps every SOAK_FLAP_SECONDS
# (default 20) between healthy and a fault. Prints requests, failures attributable to the
# filter (must be 0), spans dropped and why, and the memory curve (flat after warm-up).
# Also: SOAK_RPS (default 200), SOAK_SAMPLE_SECONDS (default 5), SOAK_VM_BUDGET_MIB (default
# 16). Memory must be flat after one full cycle through every fault (6 x 2 x SOAK_FLAP_SECONDS).
# Report: target/soak-report.txt.
# The driver is tests/tests/soak.rs (an ignored test, using the integration-test harness).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash scripts/setup.sh demo
[ -f target/meshwake.wasm ] || bash scripts/build-wasm.sh
export SOAK_SECONDS="${SOAK_SECONDS:-600}" SOAK_FLAP_SECONDS="${SOAK_FLAP_SECONDS:-20}"
say "soak: ${SOAK_SECONDS}s, collector flapping every ${SOAK_FLAP_SECONDS}s"
exec cargo test -q -p meshwake-tests --test soak -- --ignored --nocapture
