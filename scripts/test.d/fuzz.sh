#!/usr/bin/env bash
# Test stage `fuzz` (run by make test): every cargo-fuzz target in fuzz/ for a few seconds,
# under AddressSanitizer when rustup's nightly is present (scripts/fuzz.sh; else without),
# from its seed corpus (spec examples plus past crashes), as a regression and smoke run.
# `make fuzz` runs them longer. Output: cargo-like `test result:` lines.
# A fixed seed keeps `make test` repeatable: a fresh clone explores the same inputs every
# run (a prefix of them on a slower machine), so CI does not fail on a new random find;
# `make fuzz` explores with random seeds.
FUZZ_SEED="${FUZZ_SEED:-1}" FUZZ_SECONDS="${FUZZ_TEST_SECONDS:-4}" exec bash "$(dirname "$0")/../fuzz.sh"
