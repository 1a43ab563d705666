#!/usr/bin/env bash
# Test stage `fuzz` (run by make test): every cargo-fuzz target in fuzz/ for a few seconds
# from its seed corpus (spec examples plus past crashes), as a regression and smoke run.
# `make fuzz` runs them longer. Output: cargo-like `test result:` lines.
FUZZ_SECONDS="${FUZZ_TEST_SECONDS:-4}" exec bash "$(dirname "$0")/../fuzz.sh"
