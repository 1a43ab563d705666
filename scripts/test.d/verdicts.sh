#!/usr/bin/env bash
# Test stage `verdicts` (run by make test): the impact analysis on synthetic meshes, short.
# 200 noise-only runs of realistic size (10-50 deployments, 1% error floor, log-normal
# latency, several identical rollouts) must name a suspect in at most 1% of runs, and the
# 3x self-time canary (6 ms service, 30% of 40 req/s, 60 s) must be found. The full
# calibration (2,000 runs and the power table of docs/verdict-power.md) is
#   cargo run --release -p meshwake-analysis --example synth_check -- --full --markdown docs/verdict-power.md
# Output: a cargo-like `test result:` line.
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"
exec cargo run -q -p meshwake-analysis --example synth_check -- \
  --runs "${VERDICTS_RUNS:-200}" --trials "${VERDICTS_TRIALS:-10}"
